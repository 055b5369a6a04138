"""Every input is hostile: bodies, texts, numbers, path ids and query parameters, bounded first.

What a request may carry is checked before any work is done on it, and every refusal is a 400
(413 for a body too large) in the one error shape naming what was wrong:

- **Bodies**: at most ``MAX_BODY_BYTES``, read no further than that; JSON nested at most
  ``MAX_JSON_DEPTH`` deep (what is deeper than the parser's own recursion limit is refused as
  well, and the walk over the parsed body is iterative); ``NaN`` and ``Infinity`` refused; every
  number literal at most ``MAX_NUMBER_CHARS`` long, read as ``Decimal`` (never float) or ``int``.
- **Texts**: no NUL, no other control character (tab, newline and carriage return only where a
  field allows free text), no unpaired surrogate (PostgreSQL and Kafka's consumers would refuse
  it later, after something was already done with it).
- **Numbers**: a field that wants a whole number checks the magnitude of what it got
  (``whole_number``) before any arithmetic: ``1e300000`` is refused as it is, never expanded.
- **Path ids and query parameters** (``input_guard``, a middleware): the same text rules, and at
  most ``MAX_PATH_ID`` characters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from aiohttp import web as aioweb

from web.errors import ApiError

MAX_BODY_BYTES: Final = 64 * 1024
MAX_JSON_DEPTH: Final = 16
MAX_NUMBER_CHARS: Final = 64
MAX_PATH_ID: Final = 128
MAX_QUERY_VALUE: Final = 512
EARLIEST_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIME: Final = datetime(2200, 1, 1, tzinfo=UTC)
_RAW_BODY: Final = aioweb.RequestKey("checkout.raw_body", bytes)

# C0 and C1 controls (tab, newline, carriage return apart) and unpaired surrogates.
_NEVER: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# In ids, keys and one-line fields: no control character at all.
_NOT_IN_A_LINE: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]


def bad_request(message: str, param: str | None, code: str = "parameter_invalid") -> ApiError:
    return ApiError(400, code, message, param=param)


class OutOfRange:
    """A JSON number too long to be a value anything here accepts; fields refuse it by name."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"<number of {len(self.text)} characters>"


# --- bodies -------------------------------------------------------------------------------------


async def read_json_object(request: aioweb.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request's JSON object, bounded and checked as this module's docstring says."""
    raw = await read_capped(request)
    if not raw.strip():
        if allow_empty:
            return {}
        raise bad_request("send a JSON object as the request body", None, "body_missing")
    try:
        body = json.loads(raw, parse_float=_number, parse_int=_number, parse_constant=_not_a_number)
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc}", None, "invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object", None, "invalid_json")
    check_texts(body)
    return body


async def read_capped(request: aioweb.Request) -> bytes:
    """The body, read once and no further than ``MAX_BODY_BYTES`` (413 beyond); later calls
    get the same bytes (the edge reads a worker's body to check its signature, the view again)."""
    cached = request.get(_RAW_BODY)
    if cached is not None:
        return cached
    too_large = ApiError(413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    while len(raw) <= MAX_BODY_BYTES and not request.content.at_eof():
        more = await request.content.read(MAX_BODY_BYTES + 1 - len(raw))
        if not more:
            break
        raw += more
    if len(raw) > MAX_BODY_BYTES:
        raise too_large
    request[_RAW_BODY] = raw
    return raw


def _too_deep() -> ApiError:
    return bad_request(f"the body is nested more than {MAX_JSON_DEPTH} deep", None, "invalid_json")


def _number(text: str) -> Decimal | int | OutOfRange:
    if len(text) > MAX_NUMBER_CHARS:
        return OutOfRange(text)
    try:
        return int(text) if text.lstrip("-").isdigit() else Decimal(text)
    except (ValueError, InvalidOperation):
        return OutOfRange(text)


def _not_a_number(text: str) -> None:
    raise ValueError(f"{text} is not a JSON number")


# --- texts --------------------------------------------------------------------------------------


def check_texts(body: Any) -> None:
    """Refuse nesting deeper than ``MAX_JSON_DEPTH``, and control characters and unpaired
    surrogates in every string and key, naming where (``metadata.sku``). Iterative: the depth is
    checked here, not by running out of stack."""
    pending: list[tuple[Any, str, int]] = [(body, "", 0)]
    while pending:
        value, path, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        if isinstance(value, str):
            check_text(value, path or "body", multiline=True)
        elif isinstance(value, dict):
            for key, item in value.items():
                check_text(key, f"a key of {path}" if path else "a key")
                pending.append((item, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))


def check_text(value: str, param: str, *, multiline: bool = False) -> str:
    """``value`` if it carries no control character (tab and newlines in ``multiline`` text)."""
    if (_NEVER if multiline else _NOT_IN_A_LINE).search(value):
        raise bad_request(
            f"{param} contains a control character or an unpaired surrogate", _param(param)
        )
    return value


def _param(path: str) -> str:
    return path if len(path) <= 200 else path[:197] + "..."


# --- numbers ------------------------------------------------------------------------------------


def whole_number(value: Any, param: str, low: int, high: int) -> int:
    """``value`` as an int in [low, high]; its size is checked before it is turned into one."""
    message = f"{param} must be a whole number from {low} to {high}"
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise bad_request(message, param)
    if isinstance(value, Decimal):
        # adjusted() is the exponent of the first digit: no arithmetic on 1e300000.
        if not value.is_finite() or value.adjusted() > len(str(high)):
            raise bad_request(message, param)
        if value != value.to_integral_value():
            raise bad_request(message, param)
        value = int(value)
    if not low <= value <= high:
        raise bad_request(message, param)
    return value


def query_whole_number(raw: str | None, param: str, default: int, low: int, high: int) -> int:
    """A query parameter holding a whole number in ASCII digits (``²`` is a digit to Python)."""
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdecimal()) or len(raw) > len(str(high)):
        raise bad_request(f"{param} must be a whole number from {low} to {high}", param)
    return whole_number(int(raw), param, low, high)


# --- path ids and query parameters -------------------------------------------------------------


@aioweb.middleware
async def input_guard(request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
    """Path ids and query parameters are short and plain text, or the request is a 400."""
    check_parameters(request.match_info, request.query)
    return await handler(request)


def check_parameters(path: Mapping[str, str], query: Mapping[str, str]) -> None:
    for name, value in path.items():
        check_text(value, name)
        if len(value) > MAX_PATH_ID:
            raise bad_request(f"{name} is longer than {MAX_PATH_ID} characters", name)
    for name, value in query.items():
        check_text(name, "a query parameter name")
        check_text(value, name)
        if len(value) > MAX_QUERY_VALUE:
            raise bad_request(f"{name} is longer than {MAX_QUERY_VALUE} characters", name)


def time_field(body: Mapping[str, Any], name: str) -> datetime:
    """An RFC 3339 time with its offset from a JSON body, e.g. ``2026-11-22T10:00:00Z``, in UTC
    and within ``EARLIEST_TIME``..``LATEST_TIME`` (year 9999 at -01:00 is year 10000 in UTC,
    which PostgreSQL stores and its Python driver cannot read back)."""
    value = body.get(name)
    if not isinstance(value, str) or len(value) > 40:
        example = "2026-11-22T10:00:00Z"
        raise bad_request(f"{name} is required: an RFC 3339 time such as {example}", name)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise bad_request(f"{name} is not an RFC 3339 time: {value!r}", name) from None
    if moment.tzinfo is None or "T" not in value.upper():
        raise bad_request(f"{name} needs a date, a time and a time zone (Z or +hh:mm)", name)
    try:
        moment = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        moment = EARLIEST_TIME - timedelta(days=1)  # out of range either way
    if not EARLIEST_TIME <= moment <= LATEST_TIME:
        raise bad_request(
            f"{name} must lie between {EARLIEST_TIME.year} and {LATEST_TIME.year}", name
        )
    return moment
