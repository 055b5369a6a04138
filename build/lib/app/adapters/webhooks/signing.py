"""Webhook signatures and bodies: what merchants verify.

A webhook is an HTTPS POST of one domain event to a URL the merchant registered. The merchant
must be able to tell that we sent it and that it is fresh, so every request carries

    Checkout-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=<hex>]

where the HMAC key is the endpoint's whole signing secret (``whsec_…``, UTF-8) and the message is
``f"{t}."`` followed by the exact body bytes. Signing the timestamp with the body is what makes
replay protection work: an attacker who captured a request cannot re-date it. During a secret
rotation there is one ``v1`` per live secret, the current one first, so a merchant's verifier
accepts the request whichever secret it holds. This is the scheme Stripe uses, on purpose: merchants
know it and their libraries already parse it. ``docs/webhooks.md`` is the merchant-facing version.

Nothing here does IO: the dispatcher owns the clock and the network.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

SIGNATURE_HEADER: Final = "Checkout-Signature"
SIGNATURE_SCHEME: Final = "v1"
DEFAULT_TOLERANCE: Final = 300
"""Seconds a signed timestamp may be away from the verifier's clock (either way)."""


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
