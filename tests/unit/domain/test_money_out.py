"""Refunds and payouts as a state machine (app/domain/money_out.py) and the journal they book
(app/domain/ledger.py): every movement balances, and the balance follows every outcome."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.events import (
    PayoutApproved,
    PayoutCancelled,
    PayoutCreated,
    PayoutFailed,
    PayoutPaid,
    RefundConfirmed,
    RefundCreated,
    RefundFailed,
)
from app.domain.ledger import (
    HOT_WALLET,
    NETWORK_COSTS,
    Entry,
    Movement,
    UnbalancedMovement,
    moves,
)
from app.domain.money_out import (
    Attempt,
    OutgoingTransfer,
    Receipt,
    Stage,
    Step,
    TransferKind,
    TransferStateError,
    request_transfer,
)

pytestmark = pytest.mark.unit

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CUSTOMER = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
USDT_1 = 1_000_000


def _balances(*movements: Movement | None) -> Counter[tuple[str, str]]:
    totals: Counter[tuple[str, str]] = Counter()
    for movement in movements:
        for entry in movement.entries if movement else ():
            totals[(entry.account, entry.currency)] += entry.amount
    return totals


def _payout(approval: str = "automatic", fee_charged: int = 0) -> Step:
    return request_transfer(
        transfer_id="po_1",
        kind=TransferKind.PAYOUT,
        merchant_id="mer_a",
        amount=250 * USDT_1,
        to_address=CUSTOMER,
        at=AT,
        approval=approval,  # type: ignore[arg-type]
        network_fee_payer="merchant" if fee_charged else "platform",
        network_fee_charged=fee_charged,
        causation_id="payout:mer_a:key-1",
    )


def _refund() -> Step:
    return request_transfer(
        transfer_id="rf_1",
        kind=TransferKind.REFUND,
        merchant_id="mer_a",
        amount=2 * USDT_1,
        to_address=CUSTOMER,
        at=AT,
        invoice_id="inv_1",
        causation_id="refund:mer_a:key-1",
    )


def _attempt(number: int = 1) -> Attempt:
    return Attempt(number, f"{number:064x}", {"contract": []}, "0a02", 1_800_000_000_000)


def _signed_and_broadcast(transfer: OutgoingTransfer) -> OutgoingTransfer:
    signing = transfer.signing(_attempt(), AT).state
    return signing.signed("ab" * 65, AT).broadcast(AT).state


RECEIPT = Receipt(
    block_number=120,
    fee_sun=6_800_000,
    energy_usage=64_285,
    net_usage=345,
    succeeded=True,
    result="SUCCESS",
)


def test_a_movement_that_does_not_balance_is_refused() -> None:
    with pytest.raises(UnbalancedMovement, match="USDT"):
        Movement("settlement", "st_1", (Entry("a", 5), Entry("b", -4)))
    # USDT and TRX are never summed together: each must balance on its own.
    with pytest.raises(UnbalancedMovement, match="TRX"):
        Movement("x", "y", (Entry("a", 5), Entry("b", -5), Entry("c", 1, "TRX")))
    with pytest.raises(UnbalancedMovement):
        moves("x", "y", ("a", "b", -1, "USDT"))


def test_a_payout_below_the_threshold_is_approved_and_debited_at_once() -> None:
    step = _payout()
    assert step.state.stage is Stage.APPROVED and step.state.status == "approved"
    assert [type(e) for e in step.events] == [PayoutCreated]
    assert step.events[0].aggregate_version == 1
    balances = _balances(step.movement)
    assert balances[("merchant:mer_a", "USDT")] == -250 * USDT_1
    assert balances[("merchant:mer_a:in_flight", "USDT")] == 250 * USDT_1


def test_a_confirmed_payout_leaves_the_hot_wallet_and_books_the_trx_it_burned() -> None:
    created = _payout()
    broadcast = _signed_and_broadcast(created.state)
    assert broadcast.stage is Stage.BROADCAST and broadcast.version == 1
    confirmed = broadcast.confirm(RECEIPT, AT + timedelta(minutes=1))
    assert confirmed.state.stage is Stage.CONFIRMED
    (event,) = confirmed.events
    assert isinstance(event, PayoutPaid)
    assert event.data.tx_hash == _attempt().txid and event.data.network_fee_sun == 6_800_000
    assert event.aggregate_version == 2
    balances = _balances(created.movement, confirmed.movement)
    assert balances[("merchant:mer_a", "USDT")] == -250 * USDT_1
    assert balances[("merchant:mer_a:in_flight", "USDT")] == 0
    assert balances[(HOT_WALLET, "USDT")] == 250 * USDT_1  # the asset went down (credit)
    assert balances[(HOT_WALLET, "TRX")] == 6_800_000
    assert balances[(NETWORK_COSTS, "TRX")] == -6_800_000


def test_a_failed_payout_returns_the_amount_and_a_recharged_fee_to_the_balance() -> None:
    created = _payout(fee_charged=USDT_1)
    broadcast = _signed_and_broadcast(created.state)
    failed_on_chain = Receipt(120, 2_000_000, 30_000, 345, False, "OUT_OF_ENERGY")
    failed = broadcast.fail("failed on chain: OUT_OF_ENERGY", AT, failed_on_chain)
    assert failed.state.stage is Stage.FAILED
    (event,) = failed.events
    assert isinstance(event, PayoutFailed) and event.data.tx_hash == _attempt().txid
    balances = _balances(created.movement, failed.movement)
    assert balances[("merchant:mer_a", "USDT")] == 0
    assert balances[("merchant:mer_a:in_flight", "USDT")] == 0
    assert balances[("network_costs_recharged:mer_a", "USDT")] == 0
    # What it burned stays burned, whoever was to pay for it.
    assert balances[(NETWORK_COSTS, "TRX")] == -2_000_000


def test_a_refund_is_pending_until_broadcast_and_tells_its_invoice() -> None:
    created = _refund()
    assert created.state.status == "pending"
    assert isinstance(created.events[0], RefundCreated)
    assert created.events[0].data.invoice_id == "inv_1"
    signing = created.state.signing(_attempt(), AT).state
    assert signing.status == "pending" and signing.request_id == "rf_1:1"
    broadcast = signing.signed("ab" * 65, AT).broadcast(AT).state
    assert broadcast.status == "broadcast"
    confirmed = broadcast.confirm(RECEIPT, AT)
    assert isinstance(confirmed.events[0], RefundConfirmed)
    refused = signing.fail("the signer refused: limit_per_day", AT)
    assert isinstance(refused.events[0], RefundFailed)
    assert refused.events[0].data.tx_hash is None  # nothing ever reached the chain


def test_a_payout_above_the_threshold_waits_for_an_admin() -> None:
    created = _payout("admin")
    assert created.state.stage is Stage.REQUESTED
    with pytest.raises(TransferStateError):
        created.state.signing(_attempt(), AT)
    approved = created.state.approve("usr_admin", AT)
    assert approved.state.stage is Stage.APPROVED and approved.movement is None
    assert isinstance(approved.events[0], PayoutApproved)
    assert approved.events[0].aggregate_version == 2


def test_a_payout_is_cancelled_only_before_it_is_signed() -> None:
    created = _payout()
    cancelled = created.state.cancel(AT)
    assert isinstance(cancelled.events[0], PayoutCancelled)
    assert _balances(created.movement, cancelled.movement)[("merchant:mer_a", "USDT")] == 0
    signing = created.state.signing(_attempt(), AT).state
    with pytest.raises(TransferStateError):
        signing.cancel(AT)


def test_a_transaction_the_node_accepted_is_never_replaced() -> None:
    created = _payout()
    signing = created.state.signing(_attempt(1), AT).state
    # Expired unsigned or refused at broadcast: a new attempt may replace it...
    again = signing.signing(_attempt(2), AT).state
    assert again.request_id == "po_1:2"
    with pytest.raises(ValueError, match="attempt 4"):
        again.signing(_attempt(4), AT)
    # ...but never once the node had one.
    broadcast = again.signed("cd" * 65, AT).broadcast(AT).state
    with pytest.raises(TransferStateError):
        broadcast.signing(_attempt(3), AT)


def test_event_ids_are_derived_so_a_retried_step_publishes_the_same_events() -> None:
    first, second = _payout(), _payout()
    assert first.events[0].event_id == second.events[0].event_id
    broadcast = _signed_and_broadcast(first.state)
    assert (
        broadcast.confirm(RECEIPT, AT).events[0].event_id
        == broadcast.confirm(RECEIPT, AT).events[0].event_id
    )
