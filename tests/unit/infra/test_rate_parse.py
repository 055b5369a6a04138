"""Rates from the environment (``RATE_LIMIT_IP=100/minute``): the forms read, the rest refused.

A refused value is named in the error along with the forms expected, so an operator who wrote
``RATE_LIMIT_IP=100 per minute`` learns what to write instead.
"""

from __future__ import annotations

import pytest

from app.services.rate_limits import Rate, parse_rate

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("1/second", Rate(1, 1.0)),
        ("20/seconds", Rate(20, 1.0)),
        ("5/minute", Rate(5, 60.0)),
        ("5/Minute", Rate(5, 60.0)),
        ("100/MINUTES", Rate(100, 60.0)),
        ("1000/hour", Rate(1000, 3600.0)),
        ("2/hours", Rate(2, 3600.0)),
        (" 100/minute\n", Rate(100, 60.0)),  # as an environment file may leave it
        ("1000000000/second", Rate(10**9, 1.0)),
    ],
)
def test_the_forms_are_read(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "0/minute",
        "-1/minute",
        "+5/minute",
        "5/fortnight",
        "5/day",
        "5 per minute",
        "5 / minute",
        "5/min",
        "1e3/second",
        "1.5/second",
        "5/",
        "/minute",
        "5",
        "minute",
        "5/minute/hour",
        "٥/minute",  # Arabic-Indic five: int() would take it, the environment should not
        "1000000001/second",
        "99999999999/second",
        "9" * 5000 + "/second",
    ],
)
def test_anything_else_is_refused_with_the_forms_expected(text: str) -> None:
    with pytest.raises(ValueError, match="expected N/second, N/minute or N/hour") as refused:
        parse_rate(text)
    assert "e.g. 100/minute" in str(refused.value)


def test_the_refusal_names_the_value() -> None:
    with pytest.raises(ValueError, match=r"'5/fortnight'"):
        parse_rate("5/fortnight")


def test_a_rate_made_by_hand_is_checked_too() -> None:
    with pytest.raises(ValueError, match="count"):
        Rate(0, 60.0)
    with pytest.raises(ValueError, match="period"):
        Rate(5, 0.0)
