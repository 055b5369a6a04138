"""Reconciliation rules (app/domain/reconcile.py): the owner's funding, differences, and what
transfers in flight explain."""

from __future__ import annotations

import pytest

from app.domain.ledger import HOT_WALLET
from app.domain.reconcile import (
    OWNER_FUNDING,
    FeeGroup,
    InFlight,
    Position,
    SettlementBooking,
    booking_problem,
    fee_problem,
    owner_funding,
    reconciled,
    with_in_flight,
)

pytestmark = pytest.mark.unit

HOT = "THot"
DEPOSIT = "TDeposit"


def test_the_owners_funding_is_held_by_the_hot_wallet_and_owed_to_the_owner() -> None:
    movement = owner_funding(100_000_000_000, 10_000_000_000, "sim-fund:ab")
    assert (movement.kind, movement.reference) == (OWNER_FUNDING, "sim-fund:ab")
    assert {(e.account, e.currency): e.amount for e in movement.entries} == {
        (HOT_WALLET, "USDT"): -100_000_000_000,
        (OWNER_FUNDING, "USDT"): 100_000_000_000,
        (HOT_WALLET, "TRX"): -10_000_000_000,
        (OWNER_FUNDING, "TRX"): 10_000_000_000,
    }
    with pytest.raises(ValueError):
        owner_funding(0, 0, "nothing")
    with pytest.raises(ValueError):
        owner_funding(-1, 5, "negative")


def test_money_received_outside_the_ledger_is_expected_on_chain_and_not_a_difference() -> None:
    late = Position(DEPOSIT, "deposit", "USDT", ledger=10_000_000, chain=15_000_000)
    assert (late.difference, late.status) == (5_000_000, "difference")
    known = Position(
        DEPOSIT, "deposit", "USDT", ledger=10_000_000, chain=15_000_000, outside_ledger=5_000_000
    )
    assert (known.expected, known.difference, known.status) == (15_000_000, 0, "ok")


def test_a_sweep_in_flight_explains_the_usdt_and_trx_it_may_have_moved() -> None:
    sweep = InFlight(
        kind="sweep",
        reference="sw_1",
        txid="ab" * 32,
        source=DEPOSIT,
        destination=HOT,
        currency="USDT",
        amount=25_000_000,
        fee_bound=9_000_000,
    )
    # Mined, not yet solidified (so not booked): the chain already shows it.
    positions = with_in_flight(
        [
            Position(HOT, "hot_wallet", "USDT", ledger=100_000_000, chain=125_000_000),
            Position(DEPOSIT, "deposit", "USDT", ledger=25_000_000, chain=0),
            Position(DEPOSIT, "deposit", "TRX", ledger=7_080_000, chain=651_500),
            Position(HOT, "hot_wallet", "TRX", ledger=5_000_000, chain=5_000_000),
        ],
        [sweep],
    )
    assert [p.status for p in positions] == ["in_flight", "in_flight", "in_flight", "ok"]
    assert reconciled(positions)
    # More than it could have moved is a difference all the same.
    beyond = with_in_flight(
        [Position(DEPOSIT, "deposit", "USDT", ledger=25_000_000, chain=-1)], [sweep]
    )
    assert beyond[0].status == "difference" and not reconciled(beyond)


def test_without_transfers_in_flight_any_difference_fails() -> None:
    positions = with_in_flight(
        [
            Position(HOT, "hot_wallet", "TRX", ledger=5_000_000, chain=4_999_999),
            Position(HOT, "hot_wallet", "USDT", ledger=1, chain=1),
        ],
        [],
    )
    assert [p.status for p in positions] == ["difference", "ok"]
    assert not reconciled(positions)


# --- the ledger against the settlements -------------------------------------------------------


def booking(**overrides: object) -> SettlementBooking:
    fields: dict[str, object] = {
        "settlement_id": "stl_1",
        "invoice_id": "inv_1",
        "merchant_id": "mer_1",
        "status": "completed",
        "gross": 10_000_000,
        "fee": 100_000,
        "net": 9_900_000,
        "booked": True,
        "customer_funds": -10_000_000,
        "platform_fees": 100_000,
        "merchant": 9_900_000,
        "merchant_account": "merchant:mer_1",
        "other_entries": 0,
    }
    fields.update(overrides)
    return SettlementBooking(**fields)  # type: ignore[arg-type]


def test_a_settlement_booked_as_settled_is_no_difference() -> None:
    assert booking_problem(booking()) is None
    assert booking_problem(booking(status="pending", booked=False)) is None


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"booked": False}, "a completed settlement missing from the ledger"),
        ({"status": None}, "a settlement transaction in the ledger without a settlement"),
        (
            {"status": None, "booked": False},
            "a settlement_reversal transaction in the ledger without a settlement",
        ),
        ({"status": "failed"}, "the ledger books a settlement that is failed"),
        ({"merchant": 9_800_000}, "booked merchant:mer_1 9800000 instead of 9900000"),
        ({"merchant_account": "merchant:mer_2"}, "booked merchant:mer_1 0 instead of 9900000"),
        ({"platform_fees": 0}, "booked platform_fees 0 instead of 100000"),
        ({"customer_funds": -1}, "booked customer_funds -1 instead of -10000000"),
        ({"other_entries": 1}, "booked 1 entries on other accounts"),
    ],
)
def test_what_differs_between_a_settlement_and_its_booking_is_named(
    overrides: dict[str, object], problem: str
) -> None:
    assert booking_problem(booking(**overrides)) == problem


def test_a_fee_the_rule_would_not_give_is_a_difference() -> None:
    group = FeeGroup(10_000_000, "1.00", 50_000, 3, "stl_9")
    assert fee_problem(group, 50_000) is None
    assert fee_problem(group, 100_000) == (
        "3 settlement(s) of gross 10000000 at 1.00 % took a fee of 50000, the rule gives 100000"
    )
