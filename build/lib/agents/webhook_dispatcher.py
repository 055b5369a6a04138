"""What the webhook dispatcher reports: a delivery that failed for good, an endpoint it disabled.

The dispatcher (app/adapters/webhooks/dispatcher.py) runs on every worker, outside any stream; a
delivery whose last attempt failed goes to ``crypto-checkout.notifications.dlq`` as a record (the
merchant can redeliver it), and an endpoint disabled for failing is announced as a domain event,
so the merchant hears of it on their other endpoints.
"""

from __future__ import annotations

from typing import Final

from app.adapters.postgres.webhook_store import ClaimedDelivery
from app.domain.webhooks import Attempt, Notification, WebhookEndpoint, endpoint_disabled_event
from app.runtime.codecs import encode_notification
from app.runtime.dead_letters import DeadLetter, DeadLetters
from app.runtime.retry import retry_transient
from app.services.ports import EventPublisher

DISPATCHER: Final = "webhook_dispatcher"


class WebhookDeliveryFailed(Exception):
    """Every attempt of a delivery failed; the dead letter keeps it for redelivery."""


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
        await self._dead_letters.send_letter(
            DeadLetter(
                agent=DISPATCHER,
                error=error,
                key=notification.key,
                value=encode_notification(notification),
                source_topic=self._notifications_topic,
            )
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
