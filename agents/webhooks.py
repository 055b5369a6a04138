"""Webhooks: domain events become signed deliveries to merchants' endpoints.

Three steps, each restartable on its own:

1. ``webhook_agent`` reads ``crypto-checkout.domain-events`` and, for every endpoint of the
   event's merchant that wants its type, publishes a notification to
   ``crypto-checkout.notifications`` (keyed by aggregate id, so an invoice's notifications stay
   in order). The delivery id is derived from endpoint and event, so a redelivered event queues
   nothing twice.
2. ``delivery_intake_agent`` reads the notifications and queues each delivery in PostgreSQL.
3. The dispatcher (app/adapters/webhooks/dispatcher.py), one per worker, makes the attempts, with
retries
   on their own clock: a dead endpoint holds up nobody's deliveries but its own.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
import orjson
from mode import Service

from app.adapters.postgres.webhook_store import (
    Attempt,
    ClaimedDelivery,
    Notification,
    WebhookEndpoint,
    WebhookStore,
    first_delivery_id,
)
from app.adapters.webhooks.config import keyring, url_policy
from app.adapters.webhooks.dispatcher import DispatchSettings, WebhookDispatcher, WebhookSender
from app.domain.events import parse_event
from app.domain.webhooks import endpoint_disabled_event
from app.faust_app import app, resources, settings, topics
from app.runtime.dead_letters import dead_letter_event, send_to_dead_letter
from app.runtime.publishing import publish_events
from app.runtime.retry import retry_transient
from app.runtime.shutdown import hold_if_stopping
from app.runtime.topics import DOMAIN_EVENTS, NOTIFICATIONS, dead_letter

logger = logging.getLogger(__name__)


class WebhookDeliveryFailed(Exception):
    """Every attempt of a delivery failed; the dead letter keeps it for redelivery."""


class Webhooks(Service):
    """The worker's webhook store, sender and dispatcher; started after the shared clients."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._store: WebhookStore | None = None
        self._dispatcher: WebhookDispatcher | None = None
        self._sender: WebhookSender | None = None

    @property
    def store(self) -> WebhookStore:
        if self._store is None:
            self._store = WebhookStore(resources.db, keyring(settings), settings.app_id)
        return self._store

    def wake(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.wake()

    async def on_start(self) -> None:
        dispatch = DispatchSettings(
            policy=url_policy(settings),
            timeout=settings.webhook_timeout,
            disable_after=settings.webhook_disable_after,
            concurrency=settings.webhook_concurrency,
            endpoint_concurrency=settings.webhook_endpoint_concurrency,
            poll_interval=settings.webhook_poll_interval,
            **(
                {"retry_schedule": settings.webhook_retry_schedule}
                if settings.webhook_retry_schedule
                else {}
            ),
        )
        self._sender = WebhookSender(dispatch.policy, dispatch.timeout, dispatch.concurrency)
        await self._sender.start()
        self._dispatcher = WebhookDispatcher(
            self.store,
            self._sender,
            dispatch,
            on_dead_letter=_dead_letter_delivery,
            on_disabled=_announce_disabled,
        )

    @Service.task
    async def _dispatch(self) -> None:
        while self._dispatcher is None:  # on_start runs before the tasks; this is a guard
            await self.sleep(0.1)
        await self._dispatcher.run()

    async def on_stop(self) -> None:
        if self._sender is not None:
            await self._sender.close()


webhooks = Webhooks()
# After ``resources`` (added first in app/faust_app.py): the pool is open when it starts.
app.add_dependency(webhooks)


# --- 1. domain events → notifications ----------------------------------------------------------


@app.agent(topics[DOMAIN_EVENTS.name], concurrency=1)
async def webhook_agent(stream: faust.StreamT[Any]) -> None:
    async for event in stream.events():
        await hold_if_stopping()
        raw = event.value
        try:
            await retry_transient(lambda: notify_endpoints(raw), what="webhook fan-out")  # noqa: B023
        except Exception as exc:  # unreadable or refused: kept on the DLQ with its error
            dlq = topics[dead_letter(DOMAIN_EVENTS).name]
            await dead_letter_event(dlq, event, agent="webhook_agent", error=exc)


async def notify_endpoints(raw: bytes) -> int:
    """Queue the event for every endpoint that wants it; returns how many."""
    domain_event = parse_event(raw)  # our own contract: an unknown event is an error
    envelope = orjson.loads(raw)
    endpoints = await webhooks.store.subscribers(domain_event.merchant_id, domain_event.event_type)
    notifications = [
        Notification(
            delivery_id=first_delivery_id(endpoint.endpoint_id, str(domain_event.event_id)),
            endpoint_id=endpoint.endpoint_id,
            merchant_id=endpoint.merchant_id,
            origin="event",
            event=envelope,
        )
        for endpoint in endpoints
        # An endpoint is not told that it was disabled: it would not be sent anyway.
        if endpoint.endpoint_id != domain_event.aggregate_id
    ]
    await publish_notifications(notifications)
    return len(notifications)


async def publish_notifications(notifications: list[Notification]) -> None:
    topic = topics[NOTIFICATIONS.name]
    pending = [
        await topic.send(key=notification.key, value=notification.to_json())
        for notification in notifications
    ]
    for delivered in pending:
        await delivered


# --- 2. notifications → queued deliveries ------------------------------------------------------


@app.agent(topics[NOTIFICATIONS.name], concurrency=1)
async def delivery_intake_agent(stream: faust.StreamT[Any]) -> None:
    async for event in stream.events():
        try:
            notification = Notification.from_json(event.value)
            await retry_transient(
                lambda: webhooks.store.enqueue(notification),  # noqa: B023 - awaited here
                what="webhook delivery intake",
            )
            webhooks.wake()
        except Exception as exc:
            dlq = topics[dead_letter(NOTIFICATIONS).name]
            await dead_letter_event(dlq, event, agent="delivery_intake_agent", error=exc)


# --- 3. what the dispatcher reports -------------------------------------------------------------


async def _dead_letter_delivery(delivery: ClaimedDelivery, attempt: Attempt) -> None:
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
    source = topics[NOTIFICATIONS.name].get_topic_name()
    await retry_transient(
        lambda: send_to_dead_letter(
            topics[dead_letter(NOTIFICATIONS).name],
            agent="webhook_dispatcher",
            error=error,
            key=notification.key,
            value=notification.to_json(),
            source_topic=source,
        ),
        what="webhook dead letter",
    )


async def _announce_disabled(endpoint: WebhookEndpoint) -> None:
    """Tell the merchant (an event on domain-events, hence a webhook to their other endpoints)."""
    assert endpoint.disabled_at is not None and endpoint.failing_since is not None
    event = endpoint_disabled_event(
        endpoint_id=endpoint.endpoint_id,
        endpoint_version=endpoint.version,
        merchant_id=endpoint.merchant_id,
        url=endpoint.url,
        failing_since=endpoint.failing_since,
        disabled_at=endpoint.disabled_at,
    )
    await retry_transient(lambda: publish_events([event]), what="endpoint disabled event")
