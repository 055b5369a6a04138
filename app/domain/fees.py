"""The platform fee: a merchant's percentage of the gross, rounded half-up to the cent.

``fee_percentage`` is a ``Decimal`` in [0, 100] with at most 2 decimals (a basis point is the
finest rate anyone prices in). 100 is the mathematical bound, not a commercial one: the merchant
onboarding flow may cap it lower. The default is 1.0, as in the seed.

The fee is rounded half-up to the cent (10,000 micro-USDT) because merchants and accountants
read fees in cents: $9.99 at 1% is 0.0999, so the fee is 0.10 and the net 9.89 (the seed's own
example). The net is the rest, to the micro-unit, so gross = fee + net always. Below a cent a
rounded-up fee could exceed the gross (0.005 at 100% rounds to 0.01); the fee is then capped at
the gross so neither part is ever negative.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Final

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo, WithJsonSchema

from app.domain.errors import InvalidFeePercentage
from app.domain.money import MICRO_PER_USDT, check_amount

DEFAULT_FEE_PERCENTAGE: Final = Decimal("1")
MAX_FEE_PERCENTAGE: Final = Decimal("100")
FEE_PERCENTAGE_DECIMALS: Final = 2
CENT: Final = MICRO_PER_USDT // 100

_PERCENT_TEXT: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")
CANONICAL_PERCENTAGE_PATTERN: Final = r"^(100|[1-9]?[0-9](\.[0-9]?[1-9])?)$"
# fee = gross × basis_points / 10_000, in cents: gross_micro × bp / (10_000 × CENT)
_BASIS_POINTS_PER_UNIT: Final = 10**FEE_PERCENTAGE_DECIMALS
_FEE_DENOMINATOR: Final = 100 * _BASIS_POINTS_PER_UNIT * CENT


@dataclass(frozen=True, slots=True)
class FeeSplit:
    """How a gross amount divides between the platform and the merchant, in micro-USDT."""

    gross_amount: int
    platform_fee_amount: int
    net_amount: int
    platform_fee_percentage: Decimal


def split_fee(gross_amount: int, fee_percentage: Decimal) -> FeeSplit:
    """The fee (half-up to the cent, at most the gross) and the net for ``gross_amount``."""
    gross = check_amount(gross_amount, field="gross_amount", allow_zero=True)
    percentage = parse_fee_percentage(fee_percentage)
    basis_points = int(percentage * _BASIS_POINTS_PER_UNIT)
    # Half-up in integers: floor((2n + d) / 2d) is n/d rounded half-up, for n, d ≥ 0.
    fee_cents = (2 * gross * basis_points + _FEE_DENOMINATOR) // (2 * _FEE_DENOMINATOR)
    fee = min(fee_cents * CENT, gross)
    return FeeSplit(
        gross_amount=gross,
        platform_fee_amount=fee,
        net_amount=gross - fee,
        platform_fee_percentage=percentage,
    )


def parse_fee_percentage(value: object, *, field: str = "fee_percentage") -> Decimal:
    """A fee percentage from a decimal string, int, Decimal or JSON float; 2 decimals kept."""
    text = _percentage_text(value, field)
    if _PERCENT_TEXT.fullmatch(text) is None:
        raise InvalidFeePercentage(
            f"{field} must be a number between 0 and {MAX_FEE_PERCENTAGE}", param=field
        )
    percentage = Decimal(text)
    if percentage > MAX_FEE_PERCENTAGE:
        raise InvalidFeePercentage(f"{field} must be at most {MAX_FEE_PERCENTAGE}", param=field)
    exponent = percentage.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -FEE_PERCENTAGE_DECIMALS:
        raise InvalidFeePercentage(
            f"{field} must have at most {FEE_PERCENTAGE_DECIMALS} decimals", param=field
        )
    return percentage.quantize(Decimal(1).scaleb(-FEE_PERCENTAGE_DECIMALS))


def format_fee_percentage(percentage: Decimal) -> str:
    """The canonical string: ``Decimal("1.00")`` → ``"1"``, ``Decimal("0.50")`` → ``"0.5"``."""
    text = f"{percentage:.{FEE_PERCENTAGE_DECIMALS}f}"
    return text.rstrip("0").rstrip(".")


def _percentage_text(value: object, field: str) -> str:
    invalid = InvalidFeePercentage(f"{field} must be a number between 0 and 100", param=field)
    if isinstance(value, bool):
        raise invalid
    if isinstance(value, str | int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise invalid
        return format(Decimal(repr(value)), "f")
    if isinstance(value, Decimal):
        return format(value, "f")  # NaN and Infinity come out as words the pattern refuses
    raise invalid


def _percentage_input(value: object, info: ValidationInfo) -> Decimal:
    return parse_fee_percentage(value, field=info.field_name or "fee_percentage")


FeePercentage = Annotated[
    Decimal,
    BeforeValidator(_percentage_input),
    PlainSerializer(format_fee_percentage, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": CANONICAL_PERCENTAGE_PATTERN,
            "description": "platform fee percentage in [0, 100], e.g. 1 or 0.5",
        }
    ),
]
"""A fee percentage: ``Decimal`` in Python, canonical decimal string in JSON."""


TolerancePercentage = Annotated[
    Decimal,
    BeforeValidator(_percentage_input),
    PlainSerializer(format_fee_percentage, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": CANONICAL_PERCENTAGE_PATTERN,
            "description": "percent of the amount in [0, 100], e.g. 99.5",
        }
    ),
]
"""A percentage of an invoice's amount (an underpayment tolerance): as ``FeePercentage``."""
