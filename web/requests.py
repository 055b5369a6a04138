"""Reading merchant requests: every field checked, every problem named with its field.

Bodies are read by web/input.py (bounded size and depth, numbers as ``Decimal`` — never float —
so ``{"amount": 9.99}`` is exactly 9.99, no control characters); this module says what each
request may hold.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from aiohttp import web as aioweb

from app.adapters.tron.addresses import to_base58
from app.domain.commands import MAX_SHOP_URL
from app.domain.invoice import SHOP_URL_PLACEHOLDERS
from app.domain.money import parse_usdt
from app.services.create_invoice import NewInvoice
from app.settings import Settings
from web.errors import ApiError
from web.input import check_text, query_whole_number, whole_number

MAX_METADATA_KEYS = 50
MAX_ORDER_ID = 200
MAX_DESCRIPTION = 1000
MAX_REASON = 500
_CREATE_FIELDS = {
    "amount",
    "order_id",
    "description",
    "expires_in",
    "metadata",
    "redirect_url",
    "cancel_url",
}


def _bad(code: str, message: str, param: str | None = None) -> ApiError:
    return ApiError(400, code, message, param=param)


def _optional_text(
    body: dict[str, Any], field: str, limit: int, *, multiline: bool = False
) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad("parameter_invalid", f"{field} must be a string", field)
    if len(value) > limit:
        raise _bad("parameter_invalid", f"{field} must be at most {limit} characters", field)
    return check_text(value, field, multiline=multiline)


def _expires_in(body: dict[str, Any], settings: Settings) -> int:
    value = body.get("expires_in", settings.invoice_default_expires_in)
    low, high = settings.invoice_min_expires_in, settings.invoice_max_expires_in
    return whole_number(value, "expires_in", low, high)


def _metadata(body: dict[str, Any]) -> dict[str, str]:
    value = body.get("metadata", {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad("parameter_invalid", "metadata must be an object of strings", "metadata")
    if len(value) > MAX_METADATA_KEYS:
        raise _bad(
            "parameter_invalid", f"metadata holds at most {MAX_METADATA_KEYS} keys", "metadata"
        )
    for key, item in value.items():
        if not 1 <= len(key) <= 40:
            raise _bad("parameter_invalid", "metadata keys are 1 to 40 characters", "metadata")
        check_text(key, "metadata")
        if not isinstance(item, str) or len(item) > 500:
            raise _bad(
                "parameter_invalid",
                f"metadata[{key!r}] must be a string of at most 500 characters",
                f"metadata.{key}",
            )
        check_text(item, f"metadata.{key}", multiline=True)
    return dict(value)


def _shop_url(body: dict[str, Any], field: str, settings: Settings) -> str | None:
    """An absolute https URL of the shop (http too in development), where the only braces are
    the placeholders ``{invoice_id}`` and ``{order_id}``."""
    value = _optional_text(body, field, MAX_SHOP_URL)
    if value is None:
        return None
    schemes = ("https",) if settings.environment == "production" else ("https", "http")
    page = "thanks" if field == "redirect_url" else "cancelled"
    example = f"e.g. https://shop.example/orders/{{order_id}}/{page}"
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in schemes or not parts.netloc or " " in value:
        raise _bad(
            "parameter_invalid",
            f"{field} must be an absolute {' or '.join(schemes)} URL, {example}",
            field,
        )
    rest = value
    for placeholder in SHOP_URL_PLACEHOLDERS:
        rest = rest.replace(placeholder, "")
    if "{" in rest or "}" in rest:
        raise _bad(
            "parameter_invalid",
            f"{field} may only hold the placeholders {{invoice_id}} and {{order_id}}",
            field,
        )
    return value


def parse_create_invoice(body: dict[str, Any], settings: Settings) -> NewInvoice:
    unknown = sorted(set(body) - _CREATE_FIELDS)
    if unknown:
        raise _bad(
            "parameter_unknown",
            f"unknown parameter {unknown[0]!r}; allowed: {', '.join(sorted(_CREATE_FIELDS))}",
            unknown[0],
        )
    if "amount" not in body:
        raise _bad("parameter_missing", 'amount is required, e.g. "9.99" (USDT)', "amount")
    return NewInvoice(
        amount=parse_usdt(body["amount"], field="amount"),
        order_id=_optional_text(body, "order_id", MAX_ORDER_ID),
        description=_optional_text(body, "description", MAX_DESCRIPTION, multiline=True),
        expires_in=_expires_in(body, settings),
        metadata=_metadata(body),
        redirect_url=_shop_url(body, "redirect_url", settings),
        cancel_url=_shop_url(body, "cancel_url", settings),
    )


def parse_cancel_request(body: dict[str, Any]) -> str | None:
    unknown = sorted(set(body) - {"reason"})
    if unknown:
        raise _bad(
            "parameter_unknown", f"unknown parameter {unknown[0]!r}; allowed: reason", unknown[0]
        )
    return _optional_text(body, "reason", MAX_REASON, multiline=True)


def page_limit(request: aioweb.Request, maximum: int = 100) -> int:
    """The ``limit`` query parameter of a list: 1 to ``maximum``, 20 when absent."""
    return query_whole_number(request.query.get("limit"), "limit", 20, 1, maximum)


def parse_resolve_request(
    body: dict[str, Any], settings: Settings
) -> tuple[Literal["accept", "refund", "extend"], int | None, str | None]:
    """``{"action": "accept" | "refund" | "extend", "expires_in": s, "address": "T…"}``:
    ``expires_in`` only (and required) to extend, ``address`` only to refund."""
    unknown = sorted(set(body) - {"action", "expires_in", "address"})
    if unknown:
        raise _bad(
            "parameter_unknown",
            f"unknown parameter {unknown[0]!r}; allowed: action, expires_in, address",
            unknown[0],
        )
    action = body.get("action")
    if action not in ("accept", "refund", "extend"):
        raise _bad("parameter_invalid", "action must be accept, refund or extend", "action")
    expires_in = None
    if action == "extend":
        if "expires_in" not in body:
            raise _bad("parameter_missing", "extend needs expires_in (seconds)", "expires_in")
        expires_in = _expires_in(body, settings)
    elif "expires_in" in body:
        raise _bad("parameter_invalid", "expires_in is only for action extend", "expires_in")
    address = None
    if body.get("address") is not None:
        if action != "refund":
            raise _bad("parameter_invalid", "address is only for action refund", "address")
        address = tron_address(body["address"])
    return action, expires_in, address


def tron_address(value: Any, param: str = "address") -> str:
    """A Tron address in any form the node takes (base58 or 41… hex), as base58; a 400 naming
    ``param`` otherwise."""
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise _bad("parameter_invalid", f"{param} must be a Tron address (T…)", param)
    try:
        return to_base58(value.strip())
    except ValueError:
        raise _bad(
            "parameter_invalid",
            f"{param} is not a valid Tron address (its checksum fails)",
            param,
        ) from None


IDEMPOTENCY_KEY_MAX = 128


def idempotency_key(request: aioweb.Request, *, required: bool = False) -> str | None:
    """The ``Idempotency-Key`` header: 1 to 128 printable ASCII characters. ``required``: moving
    money needs one (a 400 ``idempotency_key_required`` without)."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        if required:
            raise ApiError(
                400,
                "idempotency_key_required",
                "moving money needs an Idempotency-Key header: a retry with the same key never"
                " sends twice",
                param="Idempotency-Key",
            )
        if "Idempotency-Key" not in request.headers:
            return None
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX or not (key.isascii() and key.isprintable()):
        raise ApiError(
            400,
            "idempotency_key_invalid",
            f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters",
            param="Idempotency-Key",
        )
    return key


def required_idempotency_key(request: aioweb.Request) -> str:
    """The ``Idempotency-Key`` a request that moves money must carry."""
    key = idempotency_key(request, required=True)
    assert key is not None  # required: absent raised
    return key
