from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest

from app.domain.commands import SettlementCommand, settlement_id_for
from app.domain.errors import AlreadyExists, CheckoutError, InvalidTransition, SettlementNotFound
from app.domain.events import SettlementReversed
from app.domain.settlement import Settlement, handle_settlement
from app.domain.statuses import SettlementStatus

from .factories import (
    SETTLEMENT_ID,
    T0,
    complete,
    create_settlement,
    fail,
    new_settlement,
    reverse,
    usdt,
)

pytestmark = pytest.mark.unit

PENDING, COMPLETED, FAILED, REVERSED = (
    SettlementStatus.PENDING,
    SettlementStatus.COMPLETED,
    SettlementStatus.FAILED,
    SettlementStatus.REVERSED,
)


def settlement_in(status: SettlementStatus | None) -> Settlement | None:
    if status is None:
        return None
    settlement = new_settlement()
    steps: dict[SettlementStatus, list[SettlementCommand]] = {
        PENDING: [],
        COMPLETED: [complete()],
        FAILED: [fail()],
        REVERSED: [complete(), reverse()],
    }
    for command in steps[status]:
        settlement, _ = handle_settlement(settlement, command)
    return settlement


COMMANDS: dict[str, Callable[[], SettlementCommand]] = {
    "create": create_settlement,
    "complete": complete,
    "fail": fail,
    "reverse": reverse,
}

MATRIX: dict[tuple[SettlementStatus | None, str], SettlementStatus | type[CheckoutError]] = {
    (None, "create"): PENDING,
    (None, "complete"): SettlementNotFound,
    (None, "fail"): SettlementNotFound,
    (None, "reverse"): SettlementNotFound,
    (PENDING, "create"): AlreadyExists,
    (PENDING, "complete"): COMPLETED,
    (PENDING, "fail"): FAILED,
    (PENDING, "reverse"): InvalidTransition,
    (COMPLETED, "create"): AlreadyExists,
    (COMPLETED, "complete"): InvalidTransition,
    (COMPLETED, "fail"): InvalidTransition,
    (COMPLETED, "reverse"): REVERSED,
    (FAILED, "create"): AlreadyExists,
    (FAILED, "complete"): InvalidTransition,
    (FAILED, "fail"): InvalidTransition,
    (FAILED, "reverse"): InvalidTransition,
    (REVERSED, "create"): AlreadyExists,
    (REVERSED, "complete"): InvalidTransition,
    (REVERSED, "fail"): InvalidTransition,
    (REVERSED, "reverse"): InvalidTransition,
}


def test_the_matrix_lists_every_status_and_command_pair() -> None:
    statuses: list[SettlementStatus | None] = [None, *SettlementStatus]
    assert set(MATRIX) == {(status, name) for status in statuses for name in COMMANDS}


@pytest.mark.parametrize(("before", "command"), list(MATRIX))
def test_settlement_state_machine(before: SettlementStatus | None, command: str) -> None:
    expected = MATRIX[(before, command)]
    settlement = settlement_in(before)
    if isinstance(expected, type):
        with pytest.raises(expected):
            handle_settlement(settlement, COMMANDS[command]())
        return
    after, _ = handle_settlement(settlement, COMMANDS[command]())
    assert after.status is expected
    assert Settlement.replay(after.history) == after


def test_a_settlement_splits_the_gross_into_fee_and_net() -> None:
    settlement = new_settlement(gross_amount=usdt("9.99"), fee_percentage=Decimal("1"))
    assert settlement.settlement_id == SETTLEMENT_ID
    assert settlement.settlement_id.startswith("set_")
    assert (settlement.gross_amount, settlement.platform_fee_amount, settlement.net_amount) == (
        usdt("9.99"),
        usdt("0.10"),
        usdt("9.89"),
    )
    assert settlement.to_dict()["platform_fee_percentage"] == "1"
    assert settlement.to_dict()["net_amount"] == "9.89"


def test_completion_and_failure_record_when_and_why() -> None:
    completed = settlement_in(COMPLETED)
    assert completed is not None
    assert (completed.completed_at, completed.reference) == (
        T0 + timedelta(minutes=5),
        "payout-77",
    )
    failed = settlement_in(FAILED)
    assert failed is not None
    assert failed.failure_reason == "merchant wallet rejected the payout"
    assert failed.failed_at == T0 + timedelta(minutes=5)


def test_the_same_creation_twice_returns_the_same_events() -> None:
    command = create_settlement()
    settlement, first = handle_settlement(None, command)
    assert handle_settlement(settlement, command) == (settlement, first)


def test_the_settlement_id_is_derived_from_the_invoice_id_and_round() -> None:
    assert settlement_id_for("inv_1") == settlement_id_for("inv_1") != settlement_id_for("inv_2")
    assert settlement_id_for("inv_1", 1) == settlement_id_for("inv_1")
    assert len({settlement_id_for("inv_1", n) for n in (1, 2, 3)}) == 3


def test_a_reversal_keeps_the_amounts_and_says_which_payment_and_reference() -> None:
    reversed_ = settlement_in(REVERSED)
    assert reversed_ is not None
    event = reversed_.history[-1]
    assert isinstance(event, SettlementReversed)
    data = event.data
    assert (data.gross_amount, data.platform_fee_amount, data.net_amount) == (
        reversed_.gross_amount,
        reversed_.platform_fee_amount,
        reversed_.net_amount,
    )
    assert (data.reference, data.reason) == ("ledger:90", "payment_orphaned")
    assert reversed_.reversed_at == T0 + timedelta(minutes=9)
    assert Settlement.from_dict(reversed_.to_dict()) == reversed_
    # Reversing again with the same command changes nothing; a second round is its own.
    command = reverse()
    once, first = handle_settlement(settlement_in(COMPLETED), command)
    assert handle_settlement(once, command) == (once, first)
    second, _ = handle_settlement(None, create_settlement(settlement_round=2))
    assert second.settlement_round == 2
    assert second.settlement_id == settlement_id_for(second.invoice_id, 2) != SETTLEMENT_ID


def test_a_second_creation_event_is_refused() -> None:
    settlement = new_settlement()
    created = settlement.history[0].model_copy(update={"aggregate_version": 2})
    with pytest.raises(ValueError, match="already created"):
        settlement.apply(created)
    with pytest.raises(ValueError, match="starts with SettlementCreated"):
        Settlement._born(run_failed().history[1])


def run_failed() -> Settlement:
    settlement = settlement_in(FAILED)
    assert settlement is not None
    return settlement


def test_round_trips_through_its_table_form() -> None:
    settlement = run_failed()
    assert Settlement.from_dict(settlement.to_dict()) == settlement
