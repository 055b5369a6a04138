"""Webhooks: domain events become signed deliveries to merchants' endpoints.

Three steps, each restartable on its own:

1. ``webhook_agent`` reads ``crypto-checkout.domain-events`` and publishes one notification per
   endpoint that wants the event (app/services/webhook_fanout.py).
2. ``delivery_intake_agent`` reads ``crypto-checkout.notifications`` and queues each delivery in
   PostgreSQL.
3. The dispatcher, one per worker (app/adapters/webhooks/dispatcher.py), makes the attempts with
   retries on their own clock; what it reports — a delivery that failed for good, an endpoint it
   disabled — is handled by ``DispatcherReports`` here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import faust

from app.adapters.postgres.webhook_store import ClaimedDelivery
from app.domain.webhooks import Attempt, Notification, WebhookEndpoint, endpoint_disabled_event
from app.runtime.codecs import decode_notification, encode_notification
from app.runtime.dead_letters import DeadLetters
from app.runtime.retry import retry_transient
from app.services.ports import EventPublisher
from app.services.webhook_fanout import DeliveryIntake, WebhookFanout

FANOUT: Final = "webhook_agent"
INTAKE: Final = "delivery_intake_agent"
DISPATCHER: Final = "webhook_dispatcher"


class WebhookDeliveryFailed(Exception):
    """Every attempt of a delivery failed; the dead letter keeps it for redelivery."""


class WebhookAgents:
    def __init__(
        self, fanout: WebhookFanout, intake: DeliveryIntake, dead_letters: DeadLetters
    ) -> None:
        self._fanout = fanout
        self._intake = intake
        self._dead_letters = dead_letters

    async def fan_out(self, event: faust.EventT) -> None:
        raw = event.value
        try:
            await retry_transient(lambda: self._fanout.fan_out(raw), what="webhook fan-out")
        except Exception as exc:  # unreadable or refused: kept on the DLQ with its error
            await self._dead_letters.send(event, agent=FANOUT, error=exc)

    async def take_in(self, event: faust.EventT) -> None:
        try:
            notification = decode_notification(event.value)
            await retry_transient(
                lambda: self._intake.accept(notification), what="webhook delivery intake"
            )
        except Exception as exc:
            await self._dead_letters.send(event, agent=INTAKE, error=exc)


class DispatcherReports:
    """What the dispatcher reports: a delivery that failed for good, an endpoint it disabled."""

    def __init__(
        self, dead_letters: DeadLetters, events: EventPublisher, notifications_topic: str
    ) -> None:
        self._dead_letters = dead_letters
        self._events = events
        self._notifications_topic = notifications_topic

    async def dead_letter(self, delivery: ClaimedDelivery, attempt: Attempt) -> None:
        """The last attempt failed: the delivery goes to the notifications DLQ, as a record."""
        notification = Notification(
            delivery_id=delivery.delivery_id,
            endpoint_id=delivery.endpoint_id,
            merchant_id=delivery.merchant_id,
            origin=delivery.origin,
            event=delivery.event,
            redelivery_of=delivery.redelivery_of,
        )
        error = WebhookDeliveryFailed(
            f"delivery {delivery.delivery_id} to endpoint {delivery.endpoint_id} failed "
            f"{delivery.attempt} times; last: {attempt.error}"
        )
        await self._dead_letters.send_record(
            agent=DISPATCHER,
            error=error,
            key=notification.key,
            value=encode_notification(notification),
            source_topic=self._notifications_topic,
        )

    async def endpoint_disabled(self, endpoint: WebhookEndpoint) -> None:
        """Tell the merchant (an event on domain-events, hence a webhook to their other ones)."""
        assert endpoint.disabled_at is not None and endpoint.failing_since is not None
        event = endpoint_disabled_event(
            endpoint_id=endpoint.endpoint_id,
            endpoint_version=endpoint.version,
            merchant_id=endpoint.merchant_id,
            url=endpoint.url,
            failing_since=endpoint.failing_since,
            disabled_at=endpoint.disabled_at,
        )
        await retry_transient(
            lambda: self._events.publish_events([event]), what="endpoint disabled event"
        )


def register(
    app: faust.App,
    domain_events: faust.TopicT,
    notifications: faust.TopicT,
    agents: WebhookAgents,
    hold: Callable[[], Awaitable[None]],
) -> None:
    async def webhook_agent(stream: faust.StreamT[Any]) -> None:
        """Publishes a notification for every webhook endpoint that wants the event."""
        async for event in stream.events():
            await hold()
            await agents.fan_out(event)

    async def delivery_intake_agent(stream: faust.StreamT[Any]) -> None:
        """Queues each webhook delivery in PostgreSQL for the dispatcher."""
        async for event in stream.events():
            await agents.take_in(event)

    app.agent(domain_events, name=f"{__name__}.{FANOUT}", concurrency=1)(webhook_agent)
    app.agent(notifications, name=f"{__name__}.{INTAKE}", concurrency=1)(delivery_intake_agent)
