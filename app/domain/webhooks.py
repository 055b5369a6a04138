"""Merchant webhooks, the domain part: which events an endpoint wants, and its own events.

An endpoint subscribes to event types by filter (``"*"``, a family prefix ``"Invoice*"``, or one
type); ``validate_event_type_filters`` refuses a filter that matches nothing, a typo being
otherwise a silent subscription to nothing. How a delivery is signed, retried and sent is the
adapters' business (app/adapters/webhooks/).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Final

from app.domain.events import WebhookEndpointDisabled, WebhookEndpointDisabledData

MATCH_ALL: Final = "*"


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
