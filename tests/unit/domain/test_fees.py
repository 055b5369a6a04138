from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.errors import InvalidAmount, InvalidFeePercentage
from app.domain.fees import (
    CENT,
    DEFAULT_FEE_PERCENTAGE,
    format_fee_percentage,
    parse_fee_percentage,
    split_fee,
)
from app.domain.money import MICRO_PER_USDT, parse_usdt

pytestmark = pytest.mark.unit

percentages = st.integers(min_value=0, max_value=10_000).map(lambda bp: Decimal(bp) / 100)
gross_amounts = st.integers(min_value=1, max_value=10**9 * MICRO_PER_USDT)


def test_the_seed_example_9_99_at_1_percent_is_fee_0_10_net_9_89() -> None:
    split = split_fee(parse_usdt("9.99"), DEFAULT_FEE_PERCENTAGE)
    assert split.platform_fee_amount == parse_usdt("0.10")
    assert split.net_amount == parse_usdt("9.89")
    assert split.gross_amount == parse_usdt("9.99")
    assert split.platform_fee_percentage == Decimal("1")


@pytest.mark.parametrize(
    ("gross", "percentage", "fee", "net"),
    [
        ("100", "1", "1", "99"),
        ("0.5", "1", "0.01", "0.49"),  # 0.005 is exactly half a cent: rounds up
        ("0.49", "1", "0", "0.49"),  # 0.0049 rounds down to nothing
        ("9.99", "0", "0", "9.99"),
        ("9.99", "100", "9.99", "0"),
        ("0.005", "100", "0.005", "0"),  # rounding up would exceed the gross: capped
        ("1234.567891", "2.5", "30.86", "1203.707891"),
        ("10", "0.01", "0", "10"),
        ("50", "0.01", "0.01", "49.99"),
    ],
)
def test_fee_is_rounded_half_up_to_the_cent_and_net_is_the_rest(
    gross: str, percentage: str, fee: str, net: str
) -> None:
    split = split_fee(parse_usdt(gross), Decimal(percentage))
    assert split.platform_fee_amount == parse_usdt(fee, allow_zero=True)
    assert split.net_amount == parse_usdt(net, allow_zero=True)


@given(gross_amounts, percentages)
def test_fee_plus_net_is_the_gross_and_the_fee_is_half_up_to_the_cent(
    gross: int, percentage: Decimal
) -> None:
    split = split_fee(gross, percentage)
    assert split.platform_fee_amount + split.net_amount == gross
    assert split.platform_fee_amount >= 0
    assert split.net_amount >= 0
    exact_cents = Decimal(gross) * percentage / 100 / CENT
    half_up = int(exact_cents.quantize(Decimal(1), rounding=ROUND_HALF_UP)) * CENT
    assert split.platform_fee_amount == min(half_up, gross)


def test_zero_gross_has_zero_fee() -> None:
    split = split_fee(0, Decimal("5"))
    assert (split.platform_fee_amount, split.net_amount) == (0, 0)


def test_negative_gross_is_refused() -> None:
    with pytest.raises(InvalidAmount):
        split_fee(-1, Decimal("1"))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("1", Decimal("1")),
        ("1.0", Decimal("1")),
        ("0", Decimal("0")),
        ("100", Decimal("100")),
        ("2.75", Decimal("2.75")),
        (1, Decimal("1")),
        (1.5, Decimal("1.5")),
        (Decimal("0.25"), Decimal("0.25")),
        (Decimal("1E+1"), Decimal("10")),
    ],
)
def test_fee_percentage_parses_with_two_decimals(given: object, expected: Decimal) -> None:
    assert parse_fee_percentage(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "100.01",
        "101",
        "-1",
        "0.001",
        "abc",
        "",
        True,
        None,
        float("nan"),
        Decimal("NaN"),
        Decimal("-0.5"),
        1e-3,
    ],
)
def test_fee_percentage_out_of_range_or_too_precise_is_refused(given: object) -> None:
    with pytest.raises(InvalidFeePercentage) as caught:
        parse_fee_percentage(given)
    assert caught.value.param == "fee_percentage"
    assert caught.value.code == "fee_percentage_invalid"


@pytest.mark.parametrize(
    ("percentage", "text"),
    [("1.00", "1"), ("0.50", "0.5"), ("10", "10"), ("0", "0"), ("100", "100"), ("2.75", "2.75")],
)
def test_fee_percentage_formats_canonically(percentage: str, text: str) -> None:
    assert format_fee_percentage(Decimal(percentage)) == text


@given(percentages)
def test_fee_percentage_format_then_parse_round_trips(percentage: Decimal) -> None:
    assert parse_fee_percentage(format_fee_percentage(percentage)) == percentage
