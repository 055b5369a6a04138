from __future__ import annotations

import pytest

from app.domain.confirmations import (
    MAX_CONFIRMATIONS,
    check_confirmation_override,
    confirmations_at,
    required_confirmations,
)
from app.domain.errors import AmountZero, InvalidConfirmations
from app.domain.money import parse_usdt

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("amount", "required"),
    [
        ("0.000001", 1),
        ("99.999999", 1),
        ("100", 12),
        ("100.000001", 12),
        ("9999.999999", 12),
        ("10000", 19),
        ("1000000", 19),
    ],
)
def test_required_confirmations_follow_the_amount_with_exact_boundaries(
    amount: str, required: int
) -> None:
    assert required_confirmations(parse_usdt(amount)) == required


@pytest.mark.parametrize("override", [1, 3, 50, MAX_CONFIRMATIONS])
def test_a_merchant_override_replaces_the_default(override: int) -> None:
    assert required_confirmations(parse_usdt("50000"), override) == override
    assert required_confirmations(parse_usdt("1"), override) == override


@pytest.mark.parametrize("override", [0, -1, MAX_CONFIRMATIONS + 1, True, 2.0])
def test_an_override_outside_the_range_is_refused(override: object) -> None:
    with pytest.raises(InvalidConfirmations) as caught:
        check_confirmation_override(override)  # type: ignore[arg-type]
    assert caught.value.param == "required_confirmations"


def test_the_policy_needs_a_positive_amount() -> None:
    with pytest.raises(AmountZero):
        required_confirmations(0)


@pytest.mark.parametrize(
    ("head", "block", "confirmations"),
    [(100, 100, 1), (111, 100, 12), (118, 100, 19), (99, 100, 0), (0, 100, 0)],
)
def test_confirmations_are_head_minus_block_plus_one(
    head: int, block: int, confirmations: int
) -> None:
    assert confirmations_at(head, block) == confirmations
