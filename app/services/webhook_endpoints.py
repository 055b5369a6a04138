"""The merchant's webhook endpoints: register, change, rotate secrets, and send on request.

Deliveries the merchant asks for (a test event, a redelivery, a replay of a time range) are
queued at once — so the answer can name them — and published on
``crypto-checkout.notifications`` like every other delivery (the intake then finds them queued
already). A merchant only ever sees their own endpoints and deliveries: another merchant's id is
"not found" like an unknown one. docs/webhooks.md is the merchant's guide.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from app.domain.errors import TooManyAttempts
from app.domain.events import SCHEMA_VERSION
from app.domain.webhooks import (
    TEST_EVENT_TYPE,
    Attempt,
    Delivery,
    EndpointDeleted,
    EndpointLimitReached,
    EndpointNotEnabled,
    EndpointSettings,
    Notification,
    ReplayJob,
    ReplayTooLarge,
    WebhookDeliveryNotFound,
    WebhookEndpoint,
    WebhookEndpointNotFound,
    WebhookReplayNotFound,
    new_delivery_id,
    new_replay_id,
)
from app.services.ports import (
    DeliveryDispatcher,
    DeliveryQuery,
    NotificationPublisher,
    WebhookStore,
)
from app.services.rate_limits import Limiter, Rate

MAX_ENDPOINTS_PER_MERCHANT: Final = 20
MAX_REPLAY_EVENTS: Final = 10_000


class QuotaExceeded(TooManyAttempts):
    """A merchant used up a quota of sends it may ask for (replays, redeliveries, tests)."""

    code = "quota_exceeded"


@dataclass(frozen=True)
class WebhookQuotas:
    """Per merchant, shared by all workers (docs/security.md)."""

    replay: Rate = field(default_factory=lambda: Rate(10, 3600.0))
    redeliver: Rate = field(default_factory=lambda: Rate(300, 3600.0))
    test: Rate = field(default_factory=lambda: Rate(60, 3600.0))


class WebhookEndpoints:
    def __init__(
        self,
        store: WebhookStore,
        notifications: NotificationPublisher,
        dispatcher: DeliveryDispatcher,
        *,
        replays: DeliveryDispatcher,
        limiter: Limiter,
        quotas: WebhookQuotas | None = None,
        endpoints_changed: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._notifications = notifications
        self._dispatcher = dispatcher
        self._replays = replays
        self._limiter = limiter
        self._quotas = quotas or WebhookQuotas()
        self._endpoints_changed = endpoints_changed

    async def _changed(self, merchant_id: str) -> None:
        """Every worker's cached subscribers of the merchant are dropped (webhook_subscribers)."""
        if self._endpoints_changed is not None:
            await self._endpoints_changed(merchant_id)

    async def _within_quota(self, merchant_id: str, what: str, rate: Rate) -> None:
        decision = await self._limiter.hit(f"webhook-{what}:{merchant_id}", rate)
        if not decision.allowed:
            raise QuotaExceeded(
                f"the {what} quota of {rate} is used up; retry in "
                f"{max(1, round(decision.retry_after))} s",
                retry_after=decision.retry_after,
            )

    # --- endpoints ----------------------------------------------------------------------------

    async def create(
        self, merchant_id: str, settings: EndpointSettings
    ) -> tuple[WebhookEndpoint, str]:
        """A new endpoint and its signing secret (in clear this once)."""
        if len(await self._store.endpoints(merchant_id)) >= MAX_ENDPOINTS_PER_MERCHANT:
            raise EndpointLimitReached(
                f"a merchant can have at most {MAX_ENDPOINTS_PER_MERCHANT} webhook endpoints"
            )
        created = await self._store.create_endpoint(merchant_id, settings)
        await self._changed(merchant_id)
        return created

    async def endpoints(self, merchant_id: str) -> list[WebhookEndpoint]:
        return await self._store.endpoints(merchant_id)

    async def get(self, merchant_id: str, endpoint_id: str) -> WebhookEndpoint:
        endpoint = await self._store.endpoint(merchant_id, endpoint_id)
        if endpoint is None:
            raise _endpoint_not_found(endpoint_id)
        return endpoint

    async def enabled(self, merchant_id: str, endpoint_id: str) -> WebhookEndpoint:
        """The endpoint, if it is the merchant's and enabled: nothing is sent to a disabled one."""
        return _enabled(await self.get(merchant_id, endpoint_id))

    async def update(
        self, merchant_id: str, endpoint_id: str, changes: Mapping[str, Any]
    ) -> WebhookEndpoint:
        endpoint = await self._store.update_endpoint(merchant_id, endpoint_id, changes)
        if endpoint is None:
            raise _endpoint_not_found(endpoint_id)
        await self._changed(merchant_id)
        if endpoint.enabled:
            self._dispatcher.wake()  # its pending deliveries may go now
        return endpoint

    async def delete(self, merchant_id: str, endpoint_id: str) -> None:
        if not await self._store.delete_endpoint(merchant_id, endpoint_id):
            raise _endpoint_not_found(endpoint_id)
        await self._changed(merchant_id)

    async def rotate_secret(
        self, merchant_id: str, endpoint_id: str, grace: timedelta
    ) -> tuple[WebhookEndpoint, str]:
        rotated = await self._store.rotate_secret(merchant_id, endpoint_id, grace)
        if rotated is None:
            raise _endpoint_not_found(endpoint_id)
        return rotated

    # --- deliveries ---------------------------------------------------------------------------

    async def deliveries(
        self, merchant_id: str, endpoint_id: str, query: DeliveryQuery
    ) -> tuple[list[Delivery], bool]:
        endpoint = await self.get(merchant_id, endpoint_id)
        return await self._store.deliveries(merchant_id, endpoint.endpoint_id, query)

    async def invoice_deliveries(
        self, merchant_id: str, invoice_id: str, query: DeliveryQuery
    ) -> tuple[list[Delivery], bool]:
        """The deliveries of one invoice's events, to any of the merchant's endpoints."""
        return await self._store.deliveries(
            merchant_id, None, replace(query, aggregate_id=invoice_id)
        )

    async def delivery(
        self, merchant_id: str, delivery_id: str
    ) -> tuple[Delivery, dict[str, Any], list[Attempt]]:
        found = await self._store.delivery(merchant_id, delivery_id)
        if found is None:
            raise _delivery_not_found(delivery_id)
        return found

    async def send_test(self, merchant_id: str, endpoint_id: str, *, now: datetime) -> Notification:
        """Queue a ``WebhookTest`` event to the endpoint."""
        endpoint = await self.enabled(merchant_id, endpoint_id)
        await self._within_quota(merchant_id, "test", self._quotas.test)
        event = {
            "event_id": str(uuid.uuid4()),
            "event_type": TEST_EVENT_TYPE,
            "schema_version": SCHEMA_VERSION,
            "aggregate_type": "webhook_endpoint",
            "aggregate_id": endpoint.endpoint_id,
            "aggregate_version": endpoint.version,
            "merchant_id": merchant_id,
            "causation_id": f"test:{endpoint.endpoint_id}",
            "occurred_at": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "data": {"message": "a test event sent from the API; nothing happened to any invoice"},
        }
        notification = Notification(
            delivery_id=new_delivery_id(),
            endpoint_id=endpoint.endpoint_id,
            merchant_id=merchant_id,
            origin="test",
            event=event,
        )
        await self._queue([notification])
        return notification

    async def redeliver(self, merchant_id: str, delivery_id: str) -> Notification:
        """Send a delivery's event again, as a new delivery (the original's log is kept)."""
        original, event, _ = await self.delivery(merchant_id, delivery_id)
        endpoint = await self._store.endpoint(merchant_id, original.endpoint_id)
        if endpoint is None:
            raise EndpointDeleted(
                f"the endpoint of delivery {delivery_id} was deleted", param="delivery_id"
            )
        _enabled(endpoint)
        await self._within_quota(merchant_id, "redelivery", self._quotas.redeliver)
        notification = Notification(
            delivery_id=new_delivery_id(),
            endpoint_id=endpoint.endpoint_id,
            merchant_id=merchant_id,
            origin="redelivery",
            event=event,
            redelivery_of=original.delivery_id,
        )
        await self._queue([notification])
        return notification

    async def replay(
        self, merchant_id: str, endpoint_id: str, start: datetime, end: datetime
    ) -> ReplayJob:
        """Send again every event of [start, end) that the endpoint wants, in their order:
        counted now, queued in the background (app/adapters/webhooks/replays.py)."""
        endpoint = await self.enabled(merchant_id, endpoint_id)
        counts = await self._store.event_counts(merchant_id, start, end)
        if sum(counts.values()) > MAX_REPLAY_EVENTS:
            raise ReplayTooLarge(
                f"the range holds more than {MAX_REPLAY_EVENTS} events; replay a shorter range",
                param="to",
            )
        await self._within_quota(merchant_id, "replay", self._quotas.replay)
        job = await self._store.add_replay(
            ReplayJob(
                replay_id=new_replay_id(),
                endpoint_id=endpoint.endpoint_id,
                merchant_id=merchant_id,
                start=start,
                end=end,
                expected=sum(n for kind, n in counts.items() if endpoint.wants(kind)),
            )
        )
        self._replays.wake()
        return job

    async def replay_job(self, merchant_id: str, replay_id: str) -> ReplayJob:
        job = await self._store.replay_job(merchant_id, replay_id)
        if job is None:
            raise WebhookReplayNotFound(f"no webhook replay {replay_id}", param="replay_id")
        return job

    async def _queue(self, notifications: list[Notification]) -> None:
        for notification in notifications:
            await self._store.enqueue(notification)
        await self._notifications.publish_notifications(notifications)
        self._dispatcher.wake()


def _enabled(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    if not endpoint.enabled:
        raise EndpointNotEnabled(
            f"webhook endpoint {endpoint.endpoint_id} is disabled ({endpoint.disabled_reason}); "
            "enable it first (PATCH with enabled=true)",
            param="endpoint_id",
        )
    return endpoint


def _endpoint_not_found(endpoint_id: str) -> WebhookEndpointNotFound:
    return WebhookEndpointNotFound(f"no webhook endpoint {endpoint_id}", param="endpoint_id")


def _delivery_not_found(delivery_id: str) -> WebhookDeliveryNotFound:
    return WebhookDeliveryNotFound(f"no webhook delivery {delivery_id}", param="delivery_id")
