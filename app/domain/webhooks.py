"""Merchant webhooks, the domain part: endpoints, what they want, and what is delivered to them.

An endpoint subscribes to event types by filter (``"*"``, a family prefix ``"Invoice*"``, or one
type); ``validate_event_type_filters`` refuses a filter that matches nothing, a typo being
otherwise a silent subscription to nothing. Each delivery of an event to an endpoint is a
``Notification`` on ``crypto-checkout.notifications``; the first delivery's id is derived from
endpoint and event, so a fan-out repeated after a crash queues nothing twice. How a delivery is
signed, retried and sent is the adapters' business (app/adapters/webhooks/).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from app.domain.errors import NotFound, RuleViolation
from app.domain.events import EVENT_TYPES, WebhookEndpointDisabled, WebhookEndpointDisabledData

MATCH_ALL: Final = "*"
# Sent from the API to try an endpoint; no aggregate decided it, so it is not a domain event.
TEST_EVENT_TYPE: Final = "WebhookTest"
# Fixed forever: the id of an event's first delivery to an endpoint is derived from both.
DELIVERY_NAMESPACE: Final = uuid.UUID("3b0f8f6c-7d3e-5b8a-9f61-0c2d4e6a8b1f")


def known_event_types() -> tuple[str, ...]:
    """What an endpoint may subscribe to: every domain event type, and the test event."""
    return (*EVENT_TYPES, TEST_EVENT_TYPE)


def first_delivery_id(endpoint_id: str, event_id: str) -> str:
    return f"whd_{uuid.uuid5(DELIVERY_NAMESPACE, f'{endpoint_id}|{event_id}').hex}"


def new_delivery_id() -> str:
    """A delivery the merchant asked for (test, redelivery, replay): new every time."""
    return f"whd_{secrets.token_hex(16)}"


def retry_delivery_id(failed_delivery_id: str) -> str:
    """The operator's retry of a failed delivery (``checkout webhooks retry``): one per failed
    delivery, so two retries of the same failure, even at once, queue it once."""
    digest = hashlib.sha256(f"retry:{failed_delivery_id}".encode()).hexdigest()
    return f"whd_{digest[:32]}"


# --- what is stored and delivered ---------------------------------------------------------------


@dataclass(frozen=True)
class WebhookEndpoint:
    endpoint_id: str
    merchant_id: str
    url: str
    description: str | None
    event_types: tuple[str, ...]
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime

    def wants(self, event_type: str) -> bool:
        return event_type_matches(self.event_types, event_type)


@dataclass(frozen=True)
class EndpointSettings:
    """What a merchant registers: where to send, which events, a note, whether it is on."""

    url: str
    event_types: tuple[str, ...] = (MATCH_ALL,)
    description: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class Delivery:
    """One delivery of one event to one endpoint, as the merchant's delivery log shows it."""

    delivery_id: str
    seq: int
    endpoint_id: str
    origin: str
    redelivery_of: str | None
    event_id: str
    event_type: str
    aggregate_id: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True)
class Attempt:
    attempt: int
    started_at: datetime
    latency_ms: int
    status_code: int | None
    error: str | None
    response_excerpt: str | None


@dataclass(frozen=True)
class Notification:
    """One delivery to queue, as it travels on ``crypto-checkout.notifications``.

    ``origin`` says why it exists: ``event`` (the fan-out), ``test``, ``redelivery``, ``replay``.
    ``traceparent`` is the W3C trace context of the work that made it, kept with the delivery so
    that its attempts join that trace; not part of the message body (it travels as the record's
    Kafka header) and never sent to the merchant.
    """

    delivery_id: str
    endpoint_id: str
    merchant_id: str
    origin: str
    event: dict[str, Any]
    redelivery_of: str | None = None
    traceparent: str | None = None

    def traced(self, traceparent: str | None) -> Notification:
        """This notification in the trace of ``traceparent`` (itself when there is none)."""
        return self if traceparent is None else replace(self, traceparent=traceparent)

    @property
    def key(self) -> bytes:
        """Keyed by the event's aggregate: an invoice's notifications stay in order."""
        return str(self.event["aggregate_id"]).encode()


def replay_delivery_id(replay_id: str, event_id: str) -> str:
    """A replayed event's delivery: the same id however often its batch is queued again (a
    worker that died after queuing a batch, before recording it, is followed by another)."""
    return f"whd_{uuid.uuid5(DELIVERY_NAMESPACE, f'replay|{replay_id}|{event_id}').hex}"


def new_replay_id() -> str:
    return f"whr_{secrets.token_hex(12)}"


@dataclass(frozen=True)
class ReplayJob:
    """A replay the merchant asked for: queued in the background, batch by batch, in the
    events' order; ``expected`` is the number of deliveries counted when it was asked for."""

    replay_id: str
    endpoint_id: str
    merchant_id: str
    start: datetime
    end: datetime
    expected: int
    queued: int = 0
    # queued → done; cancelled (endpoint deleted or disabled); failed (see the worker's log)
    status: str = "queued"
    created_at: datetime | None = None
    completed_at: datetime | None = None


# --- refusals -----------------------------------------------------------------------------------


class WebhookEndpointNotFound(NotFound):
    """No webhook endpoint with this id (or it is another merchant's)."""

    code = "webhook_endpoint_not_found"


class WebhookDeliveryNotFound(NotFound):
    """No webhook delivery with this id (or it is another merchant's)."""

    code = "webhook_delivery_not_found"


class WebhookReplayNotFound(NotFound):
    code = "webhook_replay_not_found"


class EndpointNotEnabled(RuleViolation):
    """Nothing is sent to a disabled endpoint; enable it first."""

    code = "webhook_endpoint_disabled"


class EndpointDeleted(RuleViolation):
    """The delivery's endpoint was deleted: nothing can be sent to it again."""

    code = "webhook_endpoint_deleted"


class EndpointLimitReached(RuleViolation):
    """A merchant has as many webhook endpoints as allowed."""

    code = "webhook_endpoint_limit"


class ReplayTooLarge(RuleViolation):
    """A replay range holding more events than one request may queue."""

    code = "replay_too_large"


# --- event type filters -------------------------------------------------------------------------


def event_type_matches(filters: Sequence[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``filters`` wants ``event_type``.

    ``"*"`` matches every type, ``"Invoice*"`` every type starting with ``Invoice``, any other
    filter exactly one type (case-sensitive, as event types are).
    """
    return any(_filter_matches(selector, event_type) for selector in filters)


def validate_event_type_filters(filters: Sequence[str], known: Collection[str]) -> list[str]:
    """The filters, deduplicated in order, if each names a known type or a prefix of one.

    Raises ``ValueError`` naming the first filter that is empty, has a ``*`` anywhere but at its
    end, or matches no type in ``known``: a typo would otherwise be a silent subscription to
    nothing.
    """
    if not filters:
        raise ValueError('event_types must not be empty; use ["*"] for every event type')
    accepted: list[str] = []
    for selector in filters:
        if not selector or MATCH_ALL in selector[:-1]:
            raise ValueError(
                f"event type filter {selector!r} is not an event type, a prefix ending in *, or *"
            )
        if not any(_filter_matches(selector, event_type) for event_type in known):
            raise ValueError(
                f"event type filter {selector!r} matches no event type; "
                f"known types: {', '.join(sorted(known))}"
            )
        if selector not in accepted:
            accepted.append(selector)
    return accepted


def _filter_matches(selector: str, event_type: str) -> bool:
    if selector.endswith(MATCH_ALL):
        return event_type.startswith(selector[:-1])
    return selector == event_type


def endpoint_disabled_event(
    *,
    endpoint_id: str,
    endpoint_version: int,
    merchant_id: str,
    url: str,
    failing_since: datetime,
    disabled_at: datetime,
) -> WebhookEndpointDisabled:
    """The event that tells a merchant the platform stopped sending to one of their endpoints.

    Its id is fixed by the endpoint's version after disabling, so announcing it twice (a retry
    after a crash) publishes the same event, which consumers deduplicate.
    """
    return WebhookEndpointDisabled.record(
        aggregate_id=endpoint_id,
        aggregate_version=endpoint_version,
        merchant_id=merchant_id,
        causation_id=f"disable:{endpoint_id}:v{endpoint_version}",
        occurred_at=disabled_at,
        data=WebhookEndpointDisabledData(
            url=url, reason="failing", failing_since=failing_since, disabled_at=disabled_at
        ),
    )
