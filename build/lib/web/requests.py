"""Reading merchant requests: JSON bodies parsed exactly, every problem named with its field.

JSON numbers are read as ``Decimal`` (never float), so ``{"amount": 9.99}`` is exactly 9.99.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from aiohttp import web as aioweb

from app.domain.money import parse_usdt
from app.services.create_invoice import NewInvoice
from app.settings import Settings
from web.errors import ApiError

MAX_BODY_BYTES = 64 * 1024
MAX_METADATA_KEYS = 50
_CREATE_FIELDS = {"amount", "order_id", "description", "expires_in", "metadata"}


def _bad(code: str, message: str, param: str | None = None) -> ApiError:
    return ApiError(400, code, message, param=param)


async def read_json_object(request: aioweb.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        if allow_empty:
            return {}
        raise _bad("body_missing", "send a JSON object as the request body")
    try:
        body = json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad("invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _bad("invalid_json", "the body must be a JSON object")
    return body


def _optional_text(body: dict[str, Any], field: str, limit: int) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad("parameter_invalid", f"{field} must be a string", field)
    if len(value) > limit:
        raise _bad("parameter_invalid", f"{field} must be at most {limit} characters", field)
    return value


def _expires_in(body: dict[str, Any], settings: Settings) -> int:
    value = body.get("expires_in", settings.invoice_default_expires_in)
    low, high = settings.invoice_min_expires_in, settings.invoice_max_expires_in
    message = f"expires_in must be a whole number of seconds from {low} to {high}"
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _bad("parameter_invalid", message, "expires_in")
    if isinstance(value, Decimal) and value != value.to_integral_value():
        raise _bad("parameter_invalid", message, "expires_in")
    seconds = int(value)
    if not low <= seconds <= high:
        raise _bad("parameter_invalid", message, "expires_in")
    return seconds


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
        if not isinstance(item, str) or len(item) > 500:
            raise _bad(
                "parameter_invalid",
                f"metadata[{key!r}] must be a string of at most 500 characters",
                f"metadata.{key}",
            )
    return dict(value)


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
        order_id=_optional_text(body, "order_id", 200),
        description=_optional_text(body, "description", 1000),
        expires_in=_expires_in(body, settings),
        metadata=_metadata(body),
    )


def parse_cancel_request(body: dict[str, Any]) -> str | None:
    unknown = sorted(set(body) - {"reason"})
    if unknown:
        raise _bad(
            "parameter_unknown", f"unknown parameter {unknown[0]!r}; allowed: reason", unknown[0]
        )
    return _optional_text(body, "reason", 500)


def page_limit(request: aioweb.Request, maximum: int = 100) -> int:
    """The ``limit`` query parameter of a list: 1 to ``maximum``, 20 when absent."""
    raw = request.query.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise _bad("parameter_invalid", f"limit must be 1 to {maximum}", "limit")
    return int(raw)
