"""Fan events out to webhook endpoints, then take each delivery into the queue.

1. ``WebhookFanout``: for every endpoint of the event's merchant that wants its type, one
   notification on ``crypto-checkout.notifications`` (keyed by aggregate id, so an invoice's
   notifications stay in order). The first delivery's id is derived from endpoint and event, so
   a redelivered event queues nothing twice.
2. ``DeliveryIntake``: each notification is queued in PostgreSQL (once per delivery id) and the
   worker's dispatcher is woken; the dispatcher makes the attempts on its own clock, so a dead
   endpoint holds up nobody's deliveries but its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import orjson

from app.domain.events import WebhookEndpointDisabled, parse_event
from app.domain.webhooks import Notification, first_delivery_id
from app.services.ports import (
    DeliveryDispatcher,
    DeliveryQueue,
    NotificationPublisher,
    WebhookSubscriptions,
)


class WebhookFanout:
    def __init__(
        self,
        subscriptions: WebhookSubscriptions,
        notifications: NotificationPublisher,
        *,
        endpoints_changed: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._subscriptions = subscriptions
        self._notifications = notifications
        self._endpoints_changed = endpoints_changed

    async def fan_out(self, raw: bytes) -> int:
        """Queue the event for every endpoint that wants it; returns how many."""
        notifications = await self.notifications_for(raw)
        await self.publish(notifications)
        return len(notifications)

    async def publish(self, notifications: Sequence[Notification]) -> None:
        """Publish ``notifications`` in order; returns once Kafka has them all."""
        await self._notifications.publish_notifications(notifications)

    async def notifications_for(self, raw: bytes) -> list[Notification]:
        """One notification for every endpoint that wants the event, not published yet."""
        event = parse_event(raw)  # our own contract: an unknown event is an error
        if isinstance(event, WebhookEndpointDisabled) and self._endpoints_changed is not None:
            # The dispatcher disabled a failing endpoint: every worker's subscribers forget it.
            await self._endpoints_changed(event.merchant_id)
        envelope = orjson.loads(raw)  # delivered as published, byte for byte the same fields
        endpoints = await self._subscriptions.subscribers(event.merchant_id, event.event_type)
        return [
            Notification(
                delivery_id=first_delivery_id(endpoint.endpoint_id, str(event.event_id)),
                endpoint_id=endpoint.endpoint_id,
                merchant_id=endpoint.merchant_id,
                origin="event",
                event=envelope,
            )
            for endpoint in endpoints
            # An endpoint is not told that it was disabled: it would not be sent anyway.
            if endpoint.endpoint_id != event.aggregate_id
        ]


class DeliveryIntake:
    def __init__(self, queue: DeliveryQueue, dispatcher: DeliveryDispatcher) -> None:
        self._queue = queue
        self._dispatcher = dispatcher

    async def accept(self, notification: Notification) -> bool:
        """Queue the delivery; False when it was queued already (a redelivered notification)."""
        queued = await self._queue.enqueue(notification)
        self._dispatcher.wake()
        return queued

    async def accept_batch(self, notifications: Sequence[Notification]) -> int:
        """Queue every delivery of ``notifications`` at once; returns how many were new."""
        queued = await self._queue.enqueue_batch(notifications)
        self._dispatcher.wake()
        return len(queued)
