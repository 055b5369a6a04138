"""Merchant webhooks, the pure part: signatures, the retry schedule, event filters, the body.

A webhook is an HTTPS POST of one domain event to a URL the merchant registered. The merchant
must be able to tell that we sent it and that it is fresh, so every request carries

    Checkout-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=<hex>]

where the HMAC key is the endpoint's whole signing secret (``whsec_…``, UTF-8) and the message is
``f"{t}."`` followed by the exact body bytes. Signing the timestamp with the body is what makes
replay protection work: an attacker who captured a request cannot re-date it. During a secret
rotation there is one ``v1`` per live secret, the current one first, so a merchant's verifier
accepts the request whichever secret it holds. This is the scheme Stripe uses, on purpose: merchants
know it and their libraries already parse it. ``docs/webhooks.md`` is the merchant-facing version.

Failed deliveries are retried on ``DEFAULT_RETRY_SCHEDULE`` (about three days, like Stripe) with
±20 % jitter so that an endpoint that comes back after an outage is not hit by every queued delivery
in the same second.

Nothing here does IO: the delivery agent owns the clock, the random source and the network.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import orjson

from app.domain.events import WebhookEndpointDisabled, WebhookEndpointDisabledData

SIGNATURE_HEADER: Final = "Checkout-Signature"
SIGNATURE_SCHEME: Final = "v1"
DEFAULT_TOLERANCE: Final = 300
"""Seconds a signed timestamp may be away from the verifier's clock (either way)."""

MATCH_ALL: Final = "*"


# --- signatures ---------------------------------------------------------------------------------


class SignatureError(ValueError):
    """A webhook signature header that does not prove the body came from us, now."""


class MalformedSignatureHeader(SignatureError):
    """The header is not ``t=<unix seconds>,v1=<hex>[,v1=<hex>…]``."""


class SignatureTimestampOutOfTolerance(SignatureError):
    """The signed timestamp is too far from now: a replay, or a clock that is badly off."""


class SignatureMismatch(SignatureError):
    """No ``v1`` signature in the header matches the body under the secret."""


_HEX_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_UNIX_SECONDS: Final = re.compile(r"[0-9]{1,12}")


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of ``f"{timestamp}."`` + ``body`` keyed by the whole secret."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<hex>…``: one ``v1`` per secret, in the order given (current first).

    More than one secret is the rotation grace period: the merchant may still hold the previous
    one, and each ``v1`` lets a verifier holding either secret accept the request.
    """
    if not secrets:
        raise ValueError("a webhook needs at least one signing secret")
    signatures = ",".join(
        f"{SIGNATURE_SCHEME}={compute_signature(secret, timestamp, body)}" for secret in secrets
    )
    return f"t={timestamp},{signatures}"


def verify_signature(
    header: str, body: bytes, secret: str, *, now: int, tolerance: int = DEFAULT_TOLERANCE
) -> None:
    """Return if ``header`` proves ``body`` was signed with ``secret`` within ``tolerance`` of now.

    Raises ``MalformedSignatureHeader``, ``SignatureTimestampOutOfTolerance`` or
    ``SignatureMismatch`` (all ``SignatureError``, a ``ValueError``). Any of several ``v1`` entries
    may match; other schemes (``v0=…``) are ignored so that we can add one without breaking
    verifiers. Comparison is constant-time.
    """
    timestamp, candidates = parse_signature_header(header)
    if abs(now - timestamp) > tolerance:
        raise SignatureTimestampOutOfTolerance(
            f"the signature timestamp {timestamp} is more than {tolerance} s away from now "
            f"({now}): a replayed request, or a clock that is off"
        )
    expected = compute_signature(secret, timestamp, body)
    # Every candidate is compared (no early exit) so timing does not reveal which one matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureMismatch(
            f"no {SIGNATURE_SCHEME} signature in the {SIGNATURE_HEADER} header matches the body "
            "under this secret (wrong secret, or a body changed after signing)"
        )


def parse_signature_header(header: str) -> tuple[int, list[str]]:
    """The timestamp and the ``v1`` signatures of a header; unknown schemes are skipped."""
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, separator, value = item.strip().partition("=")
        if not separator:
            raise MalformedSignatureHeader(
                f"{SIGNATURE_HEADER} item {item.strip()!r} is not key=value"
            )
        if key == "t":
            if timestamp is not None or not _UNIX_SECONDS.fullmatch(value):
                raise MalformedSignatureHeader(
                    f"{SIGNATURE_HEADER} needs exactly one t=<unix seconds>, got t={value!r}"
                )
            timestamp = int(value)
        elif key == SIGNATURE_SCHEME:
            if not _HEX_SHA256.fullmatch(value):
                raise MalformedSignatureHeader(
                    f"{SIGNATURE_HEADER} {SIGNATURE_SCHEME} must be 64 lowercase hex digits"
                )
            candidates.append(value)
    if timestamp is None:
        raise MalformedSignatureHeader(f"{SIGNATURE_HEADER} has no t=<unix seconds>")
    if not candidates:
        raise MalformedSignatureHeader(f"{SIGNATURE_HEADER} has no {SIGNATURE_SCHEME} signature")
    return timestamp, candidates


# --- retry schedule -----------------------------------------------------------------------------

_MINUTE: Final = 60.0
_HOUR: Final = 60 * _MINUTE

DEFAULT_RETRY_SCHEDULE: Final[tuple[float, ...]] = (
    10.0,
    _MINUTE,
    5 * _MINUTE,
    30 * _MINUTE,
    _HOUR,
    2 * _HOUR,
    4 * _HOUR,
    8 * _HOUR,
    12 * _HOUR,
    12 * _HOUR,
    12 * _HOUR,
    12 * _HOUR,
    12 * _HOUR,
)
"""Seconds to wait before attempt 2, 3, …; attempt 1 is immediate.

Fast at first (a deploy, a restarting process: 10 s, 1 min, 5 min, 30 min), then doubling (1 h to
8 h), then twice a day: 14 attempts over 3 days 3 h 36 min 10 s, so an endpoint that is down over
a long weekend night still gets the event, and a merchant who fixes their endpoint within three
days loses nothing. ``WEBHOOK_RETRY_SCHEDULE`` replaces it (``parse_retry_schedule``).
"""

JITTER: Final = 0.2
"""Each delay is drawn uniformly from ``(1 - JITTER, 1 + JITTER) × base``."""

_DURATION_UNITS: Final[Mapping[str, float]] = {
    "": 1.0,
    "ms": 0.001,
    "s": 1.0,
    "m": _MINUTE,
    "h": _HOUR,
    "d": 24 * _HOUR,
}
_DURATION: Final = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?P<unit>ms|s|m|h|d|)")


def parse_duration(text: str) -> float:
    """Seconds from ``"10s"``, ``"1m"``, ``"2h"``, ``"1d"``, ``"250ms"`` or bare seconds ``"0.2"``.

    Raises ``ValueError`` naming the text unless it is a positive, finite duration.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: use a number with s, m, h, d or ms (10s, 5m, 2h, 1d), "
            "or bare seconds (0.5)"
        )
    seconds = float(match["number"]) * _DURATION_UNITS[match["unit"]]
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{text!r} must be a duration above zero")
    return seconds


def parse_retry_schedule(text: str) -> tuple[float, ...]:
    """A retry schedule from comma-separated durations: ``"10s,1m,5m,2h,1d"`` or ``"0.2,0.5"``.

    Raises ``ValueError`` naming the bad item (and its position); the schedule must not be empty.
    """
    items = text.split(",")
    if not text.strip():
        raise ValueError("the retry schedule is empty: give at least one delay, e.g. 10s,1m,1h")
    schedule = []
    for position, item in enumerate(items, start=1):
        try:
            schedule.append(parse_duration(item))
        except ValueError as exc:
            raise ValueError(f"retry schedule item {position}: {exc}") from None
    return tuple(schedule)


def max_attempts(schedule: Sequence[float]) -> int:
    """How many attempts a delivery gets: the immediate one plus one per scheduled delay."""
    return len(schedule) + 1


def next_attempt_delay(
    schedule: Sequence[float], attempts_made: int, rng: random.Random | None = None
) -> float | None:
    """Seconds to wait before the next attempt, after ``attempts_made`` failed ones; None when done.

    The base delay is ``schedule[attempts_made - 1]``, jittered to 0.8–1.2 × base. ``rng`` makes
    it reproducible in tests; None uses the ``random`` module (jitter is not a secret).
    """
    if attempts_made < 1:
        raise ValueError(f"attempts_made must be at least 1, got {attempts_made}")
    if attempts_made > len(schedule):
        return None
    base = schedule[attempts_made - 1]
    uniform = (rng or random).uniform
    return base * uniform(1 - JITTER, 1 + JITTER)


def format_duration(seconds: float) -> str:
    """A short human form for docs and logs: ``10 s``, ``5 min``, ``3 d 3 h 36 min 10 s``."""
    remaining = round(seconds)
    if remaining == 0:
        return f"{seconds:g} s"
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count} {unit}")
    return " ".join(parts)


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


# --- body ---------------------------------------------------------------------------------------

_ENVELOPE_FIELDS: Final = (
    ("id", "event_id"),
    ("type", "event_type"),
    ("created", "occurred_at"),
    ("schema_version", "schema_version"),
    ("aggregate_type", "aggregate_type"),
    ("aggregate_id", "aggregate_id"),
    ("aggregate_version", "aggregate_version"),
    ("merchant_id", "merchant_id"),
)


def webhook_body(*, event: Mapping[str, Any], delivery_id: str, attempt: int) -> bytes:
    """The exact bytes POSTed (and signed) for one attempt of one delivery of ``event``.

    ``event`` is a domain event envelope as JSON-ready data (``model_dump(mode="json")``). Keys
    come in a fixed order so the body of a delivery is reproducible from the event, and
    ``delivery_id`` lets the merchant deduplicate redeliveries of the same event (``id``).
    """
    missing = [name for _, name in _ENVELOPE_FIELDS if name not in event]
    if "data" not in event:
        missing.append("data")
    if missing:
        raise ValueError(f"not a domain event envelope: missing {', '.join(missing)}")
    body: dict[str, Any] = {key: event[name] for key, name in _ENVELOPE_FIELDS}
    body["delivery_id"] = delivery_id
    body["attempt"] = attempt
    body["data"] = event["data"]
    return orjson.dumps(body)


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
