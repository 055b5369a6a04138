"""USDT amounts: integer micro-USDT inside, canonical decimal strings on the wire.

USDT on Tron has 6 decimals, so an amount is an ``int`` of micro-USDT (1 USDT = 1,000,000) and
every sum, difference and comparison is exact integer arithmetic. Floats never hold money: a JSON
number is read through its shortest decimal representation (``repr``), which is what the sender
wrote, so ``9.99`` is 9,990,000 micro-USDT and not 9,989,999.

Amounts are bounded by ``MAX_AMOUNT`` (10^12 USDT): several times Tether's total issuance, so no
real amount is refused, while every amount and any sum of real transfers stays inside a signed
64-bit integer (PostgreSQL ``BIGINT``, Kafka-side consumers in other languages).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BeforeValidator,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
)

from app.domain.errors import (
    AmountNegative,
    AmountTooLarge,
    AmountTooManyDecimals,
    AmountZero,
    InvalidAmount,
)

USDT_DECIMALS: Final = 6
MICRO_PER_USDT: Final = 10**USDT_DECIMALS
MAX_AMOUNT_USDT: Final = 10**12
MAX_AMOUNT: Final = MAX_AMOUNT_USDT * MICRO_PER_USDT

# ASCII digits only: ``\d`` would also accept Arabic-Indic and other Unicode digits.
_DECIMAL_TEXT: Final = re.compile(r"(?P<whole>[0-9]+)(?:\.(?P<fraction>[0-9]+))?")
_MAX_WHOLE_DIGITS: Final = len(str(MAX_AMOUNT_USDT))

CANONICAL_AMOUNT_PATTERN: Final = r"^(0|[1-9][0-9]*)(\.[0-9]{0,5}[1-9])?$"
POSITIVE_AMOUNT_PATTERN: Final = r"^(0\.[0-9]{0,5}[1-9]|[1-9][0-9]*(\.[0-9]{0,5}[1-9])?)$"


def parse_usdt(value: object, *, field: str = "amount", allow_zero: bool = False) -> int:
    """Micro-USDT from a decimal string (``"9.99"``), whole USDT (``int``), Decimal or JSON float.

    Raises an ``InvalidAmount`` subclass naming ``field``: non-numeric, negative, zero (unless
    ``allow_zero``), more than 6 decimals (trailing zeros count: ``"1.0000000"`` is refused, the
    rule is about what was written), or more than ``MAX_AMOUNT_USDT``.
    """
    text = _decimal_text(value, field)
    negative = text.startswith("-")
    match = _DECIMAL_TEXT.fullmatch(text[1:] if negative else text)
    if match is None:
        raise InvalidAmount(f"{field} must be a decimal number of USDT, like 9.99", param=field)
    if negative:
        raise AmountNegative(f"{field} must not be negative", param=field)
    whole, fraction = match["whole"], match["fraction"] or ""
    if len(fraction) > USDT_DECIMALS:
        raise AmountTooManyDecimals(
            f"{field} has more than {USDT_DECIMALS} decimals; USDT has {USDT_DECIMALS}",
            param=field,
        )
    # Checked on the text first so an absurd input never becomes a huge int.
    if len(whole.lstrip("0")) > _MAX_WHOLE_DIGITS:
        raise _too_large(field)
    micro = int(whole) * MICRO_PER_USDT + int(fraction.ljust(USDT_DECIMALS, "0"))
    return check_amount(micro, field=field, allow_zero=allow_zero)


def check_amount(micro: int, *, field: str = "amount", allow_zero: bool = False) -> int:
    """``micro`` itself if it is a valid amount of micro-USDT, else the matching InvalidAmount."""
    if isinstance(micro, bool) or not isinstance(micro, int):
        raise InvalidAmount(f"{field} must be an integer number of micro-USDT", param=field)
    if micro < 0:
        raise AmountNegative(f"{field} must not be negative", param=field)
    if micro == 0 and not allow_zero:
        raise AmountZero(f"{field} must be greater than zero", param=field)
    if micro > MAX_AMOUNT:
        raise _too_large(field)
    return micro


def format_usdt(micro: int) -> str:
    """The canonical decimal string: no trailing zeros, no exponent (9_990_000 → ``"9.99"``)."""
    if isinstance(micro, bool) or not isinstance(micro, int) or micro < 0:
        raise ValueError(f"not a non-negative amount of micro-USDT: {micro!r}")
    whole, fraction = divmod(micro, MICRO_PER_USDT)
    if fraction == 0:
        return str(whole)
    return f"{whole}.{fraction:06d}".rstrip("0")


def to_decimal(micro: int) -> Decimal:
    """The amount as an exact ``Decimal`` of USDT, for display and reports."""
    return Decimal(format_usdt(micro))


def _decimal_text(value: object, field: str) -> str:
    if isinstance(value, bool):
        raise InvalidAmount(f"{field} must be a decimal number of USDT, not a boolean", param=field)
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidAmount(f"{field} must be a finite number", param=field)
        # repr is the shortest text that reads back as this float: what the sender wrote.
        return _bounded_text(Decimal(repr(value)), field)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidAmount(f"{field} must be a finite number", param=field)
        return _bounded_text(value, field)
    raise InvalidAmount(f"{field} must be a decimal string like 9.99", param=field)


def _bounded_text(value: Decimal, field: str) -> str:
    """The number written out, once its exponent says it is not absurd: ``format`` would write
    every digit of ``1e999999999`` (or of ``1e-999999999``) before any check could refuse it."""
    if value.is_signed() and value:
        raise AmountNegative(f"{field} must not be negative", param=field)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -USDT_DECIMALS:
        raise AmountTooManyDecimals(
            f"{field} has more than {USDT_DECIMALS} decimals; USDT has {USDT_DECIMALS}",
            param=field,
        )
    if value and value.adjusted() >= _MAX_WHOLE_DIGITS:
        raise _too_large(field)
    return format(value, "f")


def _too_large(field: str) -> AmountTooLarge:
    return AmountTooLarge(f"{field} must be at most {MAX_AMOUNT_USDT} USDT", param=field)


# --- pydantic field types -----------------------------------------------------------------------
# Inside Python a model holds micro-USDT ints; ``model_dump(mode="json")`` and
# ``model_dump_json()`` write canonical decimal strings. Reading JSON accepts only strings (a
# JSON number would be ambiguous: USDT or micro-USDT?); reading Python objects takes an ``int``
# as micro-USDT and a ``str`` as USDT, so ``model_validate(model.model_dump(mode="json"))`` and
# ``model_validate(model.model_dump())`` both round-trip.


def _amount_input(value: object, info: ValidationInfo) -> int:
    field = info.field_name or "amount"
    if info.mode == "json" and not isinstance(value, str):
        raise InvalidAmount(f"{field} must be a decimal string like 9.99", param=field)
    if isinstance(value, int) and not isinstance(value, bool):
        return check_amount(value, field=field, allow_zero=True)
    return parse_usdt(value, field=field, allow_zero=True)


def _positive(value: int, info: ValidationInfo) -> int:
    return check_amount(value, field=info.field_name or "amount")


def _json_schema(pattern: str, description: str) -> dict[str, Any]:
    return {"type": "string", "pattern": pattern, "description": description}


Usdt = Annotated[
    int,
    BeforeValidator(_amount_input),
    PlainSerializer(format_usdt, return_type=str, when_used="json"),
    WithJsonSchema(
        _json_schema(CANONICAL_AMOUNT_PATTERN, "USDT as a canonical decimal string, e.g. 9.99")
    ),
]
"""A non-negative amount: micro-USDT ``int`` in Python, canonical decimal string in JSON."""

PositiveUsdt = Annotated[
    int,
    BeforeValidator(_amount_input),
    AfterValidator(_positive),
    PlainSerializer(format_usdt, return_type=str, when_used="json"),
    WithJsonSchema(
        _json_schema(POSITIVE_AMOUNT_PATTERN, "USDT above zero as a canonical decimal string")
    ),
]
"""A positive amount, otherwise as ``Usdt``."""
