"""Sweeps (app/domain/sweeps.py): the top-up plan, the stages, and the movements they book."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.ledger import CUSTOMER_FUNDS, HOT_WALLET, NETWORK_COSTS, Movement
from app.domain.sweeps import (
    MAX_OUT_OF_ENERGY,
    SWEEP_TX_BYTES,
    TOPUP_ROUNDING_SUN,
    ChainTransaction,
    Sweep,
    SweepReceipt,
    SweepStage,
    SweepStateError,
    TopUpPlan,
    TxKind,
    deposit_account,
    format_sun,
    new_sweep,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ADDRESS = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
HOT = "TLrpNTBuCpGMrB9TyVwgEhNVRhtWEQPHh4"
USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
DEPOSIT = deposit_account(ADDRESS)


def sweep(amount: int = 25_000_000) -> Sweep:
    return new_sweep(
        sweep_id="sw_1",
        deposit_address=ADDRESS,
        derivation_index=7,
        invoice_id="inv_1",
        merchant_id="mer_a",
        amount=amount,
        at=T0,
    )


def tx(kind: TxKind, number: int, amount: int, fee_limit: int = 0) -> ChainTransaction:
    return ChainTransaction(
        kind=kind,
        number=number,
        txid=f"{number:064x}",
        raw_data={},
        raw_data_hex=f"0a{number:02x}",
        expiration_ms=1_800_000_060_000,
        amount=amount,
        fee_limit=fee_limit,
    )


def receipt(fee: int, result: str = "SUCCESS", *, energy: int = 0, net: int = 0) -> SweepReceipt:
    return SweepReceipt(
        block_number=100,
        fee=fee,
        energy_usage=energy,
        energy_fee=energy * 100,
        net_usage=net,
        net_fee=0,
        result=result,
    )


def broadcast(state: Sweep, at: datetime = T0) -> Sweep:
    return state.signed("ab" * 65, at).broadcast(at)


def balances(*movements: Movement | None) -> Counter[tuple[str, str]]:
    totals: Counter[tuple[str, str]] = Counter()
    for movement in movements:
        for entry in movement.entries if movement else ():
            totals[(entry.account, entry.currency)] += entry.amount
    return totals


# --- the plan ---------------------------------------------------------------------------------


def test_a_first_sweep_is_topped_up_with_its_energy_and_a_margin_its_bandwidth_free() -> None:
    plan = TopUpPlan(
        energy=64_285, energy_price=100, bandwidth_price=1000, free_bandwidth=600, trx_on_address=0
    )
    # 6.4285 TRX of energy, +10 %, rounded up to 0.01 TRX; 345 bytes of the 600 free ones.
    assert (plan.energy_budget, plan.bandwidth_cost, plan.topup) == (7_080_000, 0, 7_080_000)


def test_a_second_sweep_within_hours_pays_its_bandwidth_and_uses_what_was_left() -> None:
    plan = TopUpPlan(
        energy=64_285,
        energy_price=100,
        bandwidth_price=1000,
        free_bandwidth=255,
        trx_on_address=651_500,
    )
    assert plan.bandwidth_cost == SWEEP_TX_BYTES * 1000
    assert plan.needed == 7_080_000 + 350_000
    assert plan.topup == 6_780_000  # 7.43 − 0.6515, rounded up to 0.01 TRX


def test_an_address_holding_enough_trx_needs_no_top_up() -> None:
    plan = TopUpPlan(
        energy=64_285,
        energy_price=100,
        bandwidth_price=1000,
        free_bandwidth=600,
        trx_on_address=8_000_000,
    )
    assert plan.topup == 0


def test_each_out_of_energy_raises_the_margin() -> None:
    plans = [
        TopUpPlan(
            energy=130_285,
            energy_price=100,
            bandwidth_price=1000,
            free_bandwidth=600,
            trx_on_address=0,
            out_of_energy=n,
        )
        for n in range(3)
    ]
    budgets = [plan.energy_budget for plan in plans]
    assert budgets == sorted(budgets) and len(set(budgets)) == 3
    assert budgets[1] >= 130_285 * 100 * 135 // 100


@given(
    energy=st.integers(0, 500_000),
    price=st.integers(1, 1000),
    bandwidth_price=st.integers(0, 5000),
    free=st.integers(0, 5000),
    held=st.integers(0, 100_000_000),
    failures=st.integers(0, 5),
)
def test_a_top_up_is_never_short(
    energy: int, price: int, bandwidth_price: int, free: int, held: int, failures: int
) -> None:
    plan = TopUpPlan(energy, price, bandwidth_price, free, held, failures)
    bandwidth = 0 if free >= SWEEP_TX_BYTES else SWEEP_TX_BYTES * bandwidth_price
    assert plan.energy_budget >= energy * price * 110 // 100
    assert plan.topup + held >= plan.needed >= energy * price + bandwidth
    assert plan.topup % TOPUP_ROUNDING_SUN == 0
    assert plan.topup < max(0, plan.needed - held) + TOPUP_ROUNDING_SUN


# --- the stages and their movements -------------------------------------------------------------


def test_a_sweep_tops_up_then_moves_the_usdt_and_books_every_burn() -> None:
    due = sweep()
    topping = due.top_up(tx(TxKind.TOPUP, 1, 7_080_000), 7_080_000, T0).state
    assert topping.stage is SweepStage.TOPPING_UP and topping.request_id == "sw_1:1"
    # The top-up activates the address: the hot wallet burns 1.1 TRX for it.
    topped = broadcast(topping).topped_up(receipt(1_100_000), T0)
    assert topped.state.stage is SweepStage.SWEEPING and topped.state.tx is None
    assert topped.booked is not None and topped.booked.tx.kind is TxKind.TOPUP
    sending = topped.state.send(tx(TxKind.SWEEP, 2, 25_000_000, 7_080_000), T0).state
    assert sending.request_id == "sw_1:2"
    done = broadcast(sending).confirm(receipt(6_428_500, energy=64_285, net=345), T0)

    assert done.state.stage is SweepStage.CONFIRMED
    assert done.state.swept_txid == f"{2:064x}"
    costs = done.state.costs
    assert (costs.topped_up, costs.topup_fees, costs.sweep_fees) == (
        7_080_000,
        1_100_000,
        6_428_500,
    )
    assert (costs.energy_usage, costs.net_usage, costs.burned) == (64_285, 345, 7_528_500)
    assert (topped.movement and topped.movement.kind, done.movement and done.movement.kind) == (
        "sweep_topup",
        "sweep_confirmed",
    )
    totals = balances(topped.movement, done.movement)
    assert totals == {
        (HOT_WALLET, "USDT"): -25_000_000,  # the hot wallet holds 25 more
        (CUSTOMER_FUNDS, "USDT"): 25_000_000,  # the deposit address holds 25 less
        (HOT_WALLET, "TRX"): 7_080_000 + 1_100_000,  # sent and burned
        (DEPOSIT, "TRX"): -(7_080_000 - 6_428_500),  # what is left on the address
        (NETWORK_COSTS, "TRX"): -(1_100_000 + 6_428_500),
    }


def test_out_of_energy_books_the_burn_and_goes_back_to_due_then_fails() -> None:
    state = sweep()
    for failures in range(1, MAX_OUT_OF_ENERGY + 1):
        sending = state.send(tx(TxKind.SWEEP, state.next_number, 25_000_000, 7_000_000), T0)
        step = broadcast(sending.state).needs_more_trx(T0, receipt(7_000_000, "OUT_OF_ENERGY"))
        assert step.movement is not None and step.movement.kind == "sweep_failed"
        assert balances(step.movement) == {
            (NETWORK_COSTS, "TRX"): -7_000_000,
            (DEPOSIT, "TRX"): 7_000_000,
        }
        state = step.state
        assert state.costs.out_of_energy == failures
        if failures < MAX_OUT_OF_ENERGY:
            assert state.stage is SweepStage.DUE and state.tx is None
    assert state.stage is SweepStage.FAILED and "out of energy" in (state.failure_reason or "")
    assert state.costs.sweep_fees == 7_000_000 * MAX_OUT_OF_ENERGY


def test_a_bandwidth_refusal_asks_for_more_trx_without_a_receipt() -> None:
    sending = sweep().send(tx(TxKind.SWEEP, 1, 25_000_000, 7_000_000), T0).state
    step = sending.needs_more_trx(T0)
    assert step.state.stage is SweepStage.DUE and step.movement is None
    assert step.state.costs.out_of_energy == 1 and step.state.next_number == 2


def test_a_broadcast_transaction_is_replaced_only_when_it_was_lost() -> None:
    topping = broadcast(sweep().top_up(tx(TxKind.TOPUP, 1, 7_080_000), 7_080_000, T0).state)
    with pytest.raises(SweepStateError):
        topping.top_up(tx(TxKind.TOPUP, 2, 7_080_000), 7_080_000, T0)
    again = topping.top_up(tx(TxKind.TOPUP, 2, 7_080_000), 7_080_000, T0, earlier_lost=True)
    assert again.state.tx is not None and not again.state.tx.broadcast_accepted
    with pytest.raises(ValueError, match="attempt 5"):
        again.state.top_up(tx(TxKind.TOPUP, 5, 7_080_000), 7_080_000, T0)


def test_a_sweep_moves_exactly_its_amount_and_final_sweeps_do_not_change() -> None:
    due = sweep()
    with pytest.raises(ValueError, match="moves"):
        due.send(tx(TxKind.SWEEP, 1, 24_000_000), T0)
    failed = due.fail("the signer refused: limit_per_day", T0)
    assert failed.state.stage is SweepStage.FAILED and failed.movement is None
    with pytest.raises(SweepStateError):
        failed.state.top_up(tx(TxKind.TOPUP, 1, 1), 1, T0)
    with pytest.raises(SweepStateError):
        failed.state.signed("ab", T0 + timedelta(seconds=1))


def test_a_sweep_that_failed_on_chain_books_only_its_burn() -> None:
    sending = broadcast(sweep().send(tx(TxKind.SWEEP, 1, 25_000_000, 7_000_000), T0).state)
    step = sending.fail("failed on chain: REVERT", T0, receipt(211_700, "REVERT"))
    assert step.state.stage is SweepStage.FAILED
    assert balances(step.movement) == {(NETWORK_COSTS, "TRX"): -211_700, (DEPOSIT, "TRX"): 211_700}


def test_the_signing_requests_name_the_purpose_account_and_destination() -> None:
    topping = sweep().top_up(tx(TxKind.TOPUP, 1, 7_080_000), 7_080_000, T0).state
    assert topping.signing_request(HOT, USDT) == {
        "request_id": "sw_1:1",
        "account": "hot_wallet",
        "purpose": "sweep_topup",
        "kind": "trx",
        "to": ADDRESS,
        "amount": 7_080_000,
        "token_contract": None,
        "raw_data_hex": "0a01",
        "destination_account": "deposit:7",
    }
    sending = sweep().send(tx(TxKind.SWEEP, 1, 25_000_000, 7_080_000), T0).state
    body = sending.signing_request(HOT, USDT)
    assert (body["account"], body["purpose"], body["kind"], body["to"], body["amount"]) == (
        "deposit:7",
        "sweep",
        "trc20",
        HOT,
        25_000_000,
    )
    assert body["token_contract"] == USDT


def test_trx_amounts_read_as_decimals() -> None:
    assert (format_sun(6_428_500), format_sun(-500_000), format_sun(0)) == ("6.4285", "-0.5", "0")
