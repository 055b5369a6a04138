from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from app.domain.errors import (
    AmountNegative,
    AmountTooLarge,
    AmountTooManyDecimals,
    AmountZero,
    InvalidAmount,
)
from app.domain.money import (
    MAX_AMOUNT,
    MAX_AMOUNT_USDT,
    MICRO_PER_USDT,
    PositiveUsdt,
    Usdt,
    check_amount,
    format_usdt,
    parse_usdt,
    to_decimal,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("given", "micro"),
    [
        ("9.99", 9_990_000),
        ("0.000001", 1),
        ("10", 10_000_000),
        ("10.5", 10_500_000),
        ("010.50", 10_500_000),
        ("1.000000", 1_000_000),
        ("99.999999", 99_999_999),
        (str(MAX_AMOUNT_USDT), MAX_AMOUNT),
        (7, 7_000_000),
        (Decimal("9.990"), 9_990_000),
        (Decimal("1E+2"), 100_000_000),
        (9.99, 9_990_000),
        (0.1, 100_000),
        (1e-6, 1),
    ],
)
def test_parse_reads_decimal_text_whole_usdt_decimals_and_json_floats_exactly(
    given: object, micro: int
) -> None:
    assert parse_usdt(given) == micro


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ("0", AmountZero),
        ("0.000000", AmountZero),
        (0, AmountZero),
        ("-1", AmountNegative),
        ("-0.5", AmountNegative),
        (-3, AmountNegative),
        (Decimal("-1"), AmountNegative),
        (-9.99, AmountNegative),
        ("1.0000001", AmountTooManyDecimals),
        ("1.0000000", AmountTooManyDecimals),
        (1e-7, AmountTooManyDecimals),
        (Decimal("0.1234567"), AmountTooManyDecimals),
        (str(MAX_AMOUNT_USDT + 1), AmountTooLarge),
        ("1" + "0" * 5000, AmountTooLarge),
        (1e20, AmountTooLarge),
        ("abc", InvalidAmount),
        ("", InvalidAmount),
        (" 9.99", InvalidAmount),
        ("9.99 ", InvalidAmount),
        ("+9.99", InvalidAmount),
        ("9,99", InvalidAmount),
        ("1e3", InvalidAmount),
        (".5", InvalidAmount),
        ("5.", InvalidAmount),
        ("--1", InvalidAmount),
        ("١٢", InvalidAmount),  # Arabic-Indic digits are digits to Python, not to us
        ("NaN", InvalidAmount),
        (float("nan"), InvalidAmount),
        (float("inf"), InvalidAmount),
        (Decimal("Infinity"), InvalidAmount),
        (True, InvalidAmount),
        (None, InvalidAmount),
        ([1], InvalidAmount),
    ],
)
def test_parse_refuses_bad_amounts_with_a_code_naming_the_field(
    given: object, error: type[InvalidAmount]
) -> None:
    with pytest.raises(error) as caught:
        parse_usdt(given, field="total")
    assert type(caught.value) is error
    assert caught.value.param == "total"
    assert "total" in caught.value.message


def test_zero_is_accepted_where_the_caller_allows_it() -> None:
    assert parse_usdt("0", allow_zero=True) == 0
    assert check_amount(0, allow_zero=True) == 0


def test_error_codes_are_stable() -> None:
    codes = {
        InvalidAmount: "amount_invalid",
        AmountNegative: "amount_negative",
        AmountZero: "amount_zero",
        AmountTooManyDecimals: "amount_too_many_decimals",
        AmountTooLarge: "amount_too_large",
    }
    for error, code in codes.items():
        assert error.code == code


@pytest.mark.parametrize("given", [1.5, "1", True, -1, MAX_AMOUNT + 1])
def test_check_amount_wants_a_bounded_non_negative_int(given: object) -> None:
    with pytest.raises(InvalidAmount):
        check_amount(given)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("micro", "text"),
    [
        (0, "0"),
        (1, "0.000001"),
        (9_990_000, "9.99"),
        (10_000_000, "10"),
        (10_100_000, "10.1"),
        (123_456_789, "123.456789"),
        (MAX_AMOUNT, str(MAX_AMOUNT_USDT)),
    ],
)
def test_format_writes_the_canonical_decimal_string(micro: int, text: str) -> None:
    assert format_usdt(micro) == text
    assert to_decimal(micro) == Decimal(text)


@pytest.mark.parametrize("given", [-1, True, 1.0, "1"])
def test_format_refuses_what_is_not_an_amount(given: object) -> None:
    with pytest.raises(ValueError, match="micro-USDT"):
        format_usdt(given)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=MAX_AMOUNT))
def test_format_then_parse_gives_back_the_amount(micro: int) -> None:
    text = format_usdt(micro)
    assert parse_usdt(text, allow_zero=True) == micro
    assert format_usdt(parse_usdt(text, allow_zero=True)) == text


@given(
    st.integers(min_value=0, max_value=MAX_AMOUNT_USDT - 1),
    st.text(alphabet="0123456789", min_size=0, max_size=6),
)
def test_parse_of_any_decimal_with_six_decimals_or_fewer_is_exact(
    whole: int, fraction: str
) -> None:
    text = f"{whole}.{fraction}" if fraction else str(whole)
    expected = Decimal(text) * MICRO_PER_USDT
    assert parse_usdt(text, allow_zero=True) == int(expected)
    assert to_decimal(parse_usdt(text, allow_zero=True)) == Decimal(text)


@given(st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(10**9), places=6))
def test_json_floats_read_as_the_decimal_the_sender_wrote(amount: Decimal) -> None:
    written = float(str(amount))  # what a JSON decoder makes of the number the sender wrote
    assert parse_usdt(written) == int(Decimal(repr(written)) * MICRO_PER_USDT)


class _Priced(BaseModel):
    price: Usdt
    total: PositiveUsdt


def test_model_fields_hold_micro_usdt_and_write_decimal_strings() -> None:
    priced = _Priced(price=0, total="9.99")
    assert priced.total == 9_990_000
    assert priced.model_dump() == {"price": 0, "total": 9_990_000}
    assert priced.model_dump(mode="json") == {"price": "0", "total": "9.99"}
    assert priced.model_dump_json() == '{"price":"0","total":"9.99"}'
    assert _Priced.model_validate_json(priced.model_dump_json()) == priced
    assert _Priced.model_validate(priced.model_dump(mode="json")) == priced


def test_json_numbers_are_refused_on_the_wire_as_ambiguous() -> None:
    with pytest.raises(InvalidAmount) as caught:
        _Priced.model_validate_json('{"price": "1", "total": 9.99}')
    assert caught.value.param == "total"


def test_model_fields_refuse_zero_where_positive_and_name_the_field() -> None:
    with pytest.raises(AmountZero) as caught:
        _Priced(price=0, total=0)
    assert caught.value.param == "total"
    with pytest.raises(AmountNegative):
        _Priced(price=-1, total=1)


def test_model_fields_keep_pydantic_errors_for_other_fields() -> None:
    class _Named(BaseModel):
        name: str
        price: Usdt

    with pytest.raises(ValidationError):
        _Named.model_validate({"name": 3, "price": 1})


@pytest.mark.parametrize(
    ("given", "error"),
    [
        (Decimal("1e999999999999999999"), AmountTooLarge),
        (Decimal("1e300000"), AmountTooLarge),
        (Decimal("1e-999999999"), AmountTooManyDecimals),
        (Decimal("-1e999999999"), AmountNegative),
        (1e300, AmountTooLarge),
    ],
)
def test_an_absurd_exponent_is_refused_without_writing_the_number_out(
    given: object, error: type[InvalidAmount]
) -> None:
    # format(Decimal("1e999999999999999999"), "f") would need more memory than there is.
    with pytest.raises(error):
        parse_usdt(given, field="amount")
