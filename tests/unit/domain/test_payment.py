from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from app.domain.commands import DetectPayment, OrphanPayment, PaymentCommand, UpdateConfirmations
from app.domain.errors import (
    AggregateMismatch,
    AmountZero,
    CheckoutError,
    InvalidTransition,
    PaymentNotFound,
)
from app.domain.events import PaymentConfirmed, PaymentDetected, PaymentOrphaned
from app.domain.observations import ChainHeadAdvanced, TransferObserved, TransferOrphaned
from app.domain.payment import Payment, handle_payment
from app.domain.statuses import PAYMENT_TRANSITIONS, PaymentStatus

from .factories import (
    BLOCK,
    CUSTOMER_ADDRESS,
    DEPOSIT_ADDRESS,
    USDT_CONTRACT,
    block_id,
    detect,
    fail_payment,
    head,
    new_payment,
    orphan,
    payment_id_of,
    run_payment,
    tx_hash,
    usdt,
)

pytestmark = pytest.mark.unit

DETECTED, CONFIRMING, CONFIRMED, FAILED, ORPHANED = (
    PaymentStatus.DETECTED,
    PaymentStatus.CONFIRMING,
    PaymentStatus.CONFIRMED,
    PaymentStatus.FAILED,
    PaymentStatus.ORPHANED,
)
REQUIRED = 12
NEW_BLOCK = BLOCK + 3


def payment_in(status: PaymentStatus | None) -> Payment | None:
    """A payment needing 12 confirmations, in ``status``, its block at ``BLOCK``."""
    if status is None:
        return None
    if status is DETECTED:
        # Detection always counts the transfer's own block; a bare detected state is what a
        # history cut right after PaymentDetected holds.
        return Payment.replay(new_payment().history[:1])
    payment = new_payment(required_confirmations=REQUIRED)
    steps: dict[PaymentStatus, list[PaymentCommand]] = {
        CONFIRMING: [],
        CONFIRMED: [head(BLOCK + REQUIRED - 1)],
        ORPHANED: [orphan()],
        FAILED: [fail_payment()],
    }
    return run_payment(payment, *steps[status])


COMMANDS: dict[str, Callable[[], PaymentCommand]] = {
    "detect_in_new_block": lambda: detect(
        block_number=NEW_BLOCK, block_id=block_id(NEW_BLOCK), required_confirmations=REQUIRED
    ),
    "detect_in_same_block": lambda: detect(required_confirmations=REQUIRED),
    "head_short_of_required": lambda: head(BLOCK + 5),
    "head_reaching_required": lambda: head(BLOCK + REQUIRED - 1),
    "stale_head": lambda: head(BLOCK - 1),
    "orphan_of_its_block": orphan,
    "orphan_of_another_block": lambda: orphan(block=block_id(BLOCK - 7)),
    "fail": fail_payment,
}

Outcome = tuple[PaymentStatus, int] | type[CheckoutError]

# (status before, command) → (status after, number of events), or the error.
MATRIX: dict[tuple[PaymentStatus | None, str], Outcome] = {
    (None, "detect_in_new_block"): (CONFIRMING, 2),
    (None, "detect_in_same_block"): (CONFIRMING, 2),
    (None, "head_short_of_required"): PaymentNotFound,
    (None, "head_reaching_required"): PaymentNotFound,
    (None, "stale_head"): PaymentNotFound,
    (None, "orphan_of_its_block"): PaymentNotFound,
    (None, "orphan_of_another_block"): PaymentNotFound,
    (None, "fail"): PaymentNotFound,
    (DETECTED, "detect_in_new_block"): (DETECTED, 0),
    (DETECTED, "detect_in_same_block"): (DETECTED, 0),
    (DETECTED, "head_short_of_required"): (CONFIRMING, 1),
    (DETECTED, "head_reaching_required"): (CONFIRMED, 2),
    (DETECTED, "stale_head"): (DETECTED, 0),
    (DETECTED, "orphan_of_its_block"): InvalidTransition,
    (DETECTED, "orphan_of_another_block"): (DETECTED, 0),
    (DETECTED, "fail"): (FAILED, 1),
    (CONFIRMING, "detect_in_new_block"): (CONFIRMING, 0),
    (CONFIRMING, "detect_in_same_block"): (CONFIRMING, 0),
    (CONFIRMING, "head_short_of_required"): (CONFIRMING, 1),
    (CONFIRMING, "head_reaching_required"): (CONFIRMED, 1),
    (CONFIRMING, "stale_head"): (CONFIRMING, 0),
    (CONFIRMING, "orphan_of_its_block"): (ORPHANED, 1),
    (CONFIRMING, "orphan_of_another_block"): (CONFIRMING, 0),
    (CONFIRMING, "fail"): (FAILED, 1),
    (CONFIRMED, "detect_in_new_block"): (CONFIRMED, 0),
    (CONFIRMED, "detect_in_same_block"): (CONFIRMED, 0),
    (CONFIRMED, "head_short_of_required"): (CONFIRMED, 0),
    (CONFIRMED, "head_reaching_required"): (CONFIRMED, 0),
    (CONFIRMED, "stale_head"): (CONFIRMED, 0),
    (CONFIRMED, "orphan_of_its_block"): (ORPHANED, 1),
    (CONFIRMED, "orphan_of_another_block"): (CONFIRMED, 0),
    (CONFIRMED, "fail"): InvalidTransition,
    (ORPHANED, "detect_in_new_block"): (CONFIRMING, 2),
    (ORPHANED, "detect_in_same_block"): (CONFIRMING, 2),
    (ORPHANED, "head_short_of_required"): (ORPHANED, 0),
    (ORPHANED, "head_reaching_required"): (ORPHANED, 0),
    (ORPHANED, "stale_head"): (ORPHANED, 0),
    (ORPHANED, "orphan_of_its_block"): (ORPHANED, 0),
    (ORPHANED, "orphan_of_another_block"): (ORPHANED, 0),
    (ORPHANED, "fail"): InvalidTransition,
    (FAILED, "detect_in_new_block"): (FAILED, 0),
    (FAILED, "detect_in_same_block"): (FAILED, 0),
    (FAILED, "head_short_of_required"): (FAILED, 0),
    (FAILED, "head_reaching_required"): (FAILED, 0),
    (FAILED, "stale_head"): (FAILED, 0),
    (FAILED, "orphan_of_its_block"): InvalidTransition,
    (FAILED, "orphan_of_another_block"): (FAILED, 0),
    (FAILED, "fail"): InvalidTransition,
}


def test_the_matrix_lists_every_status_and_command_pair() -> None:
    statuses: list[PaymentStatus | None] = [None, *PaymentStatus]
    assert set(MATRIX) == {(status, name) for status in statuses for name in COMMANDS}


@pytest.mark.parametrize(("before", "command"), list(MATRIX))
def test_payment_state_machine(before: PaymentStatus | None, command: str) -> None:
    expected = MATRIX[(before, command)]
    payment = payment_in(before)
    if isinstance(expected, type):
        with pytest.raises(expected):
            handle_payment(payment, COMMANDS[command]())
        return
    after, events = handle_payment(payment, COMMANDS[command]())
    assert (after.status, len(events)) == expected
    assert Payment.replay(after.history) == after
    walk = [Payment.replay(after.history[:n]) for n in range(1, len(after.history) + 1)]
    for previous, following in itertools.pairwise(walk):
        if following.status is not previous.status:
            assert following.status in PAYMENT_TRANSITIONS[previous.status]


def test_a_deep_reorg_orphans_a_confirmed_payment_and_says_it_was_confirmed() -> None:
    payment, [orphaned] = handle_payment(payment_in(CONFIRMED), orphan())
    assert isinstance(orphaned, PaymentOrphaned) and orphaned.data.was_confirmed
    assert (payment.status, payment.confirmed_at, payment.confirmations) == (ORPHANED, None, 0)
    _, [counting] = handle_payment(payment_in(CONFIRMING), orphan())
    assert isinstance(counting, PaymentOrphaned) and not counting.data.was_confirmed


def test_detection_counts_the_transfers_block_as_the_first_confirmation() -> None:
    payment, events = handle_payment(None, detect(required_confirmations=REQUIRED))
    assert [event.event_type for event in events] == [
        "PaymentDetected",
        "PaymentConfirmationsUpdated",
    ]
    assert (payment.status, payment.confirmations) == (CONFIRMING, 1)
    assert payment.payment_id == payment_id_of(1)
    assert payment.counts


def test_a_small_payment_is_confirmed_by_its_own_block() -> None:
    payment, events = handle_payment(None, detect(required_confirmations=1))
    assert payment.status is CONFIRMED
    assert [event.event_type for event in events][-1] == "PaymentConfirmed"
    assert payment.confirmed_at == payment.block_timestamp


def test_detection_at_a_later_head_counts_up_to_it() -> None:
    payment, _ = handle_payment(
        None, detect(required_confirmations=REQUIRED, head_number=BLOCK + 4)
    )
    assert (payment.status, payment.confirmations) == (CONFIRMING, 5)


def test_detection_with_a_head_below_the_block_is_refused() -> None:
    with pytest.raises(ValidationError, match="head_number"):
        detect(head_number=BLOCK - 1)


def test_confirmations_grow_with_the_head_and_confirm_at_the_required_count() -> None:
    payment = new_payment(required_confirmations=REQUIRED)
    payment = run_payment(payment, head(BLOCK + 5))
    assert (payment.status, payment.confirmations) == (CONFIRMING, 6)
    payment, events = handle_payment(payment, head(BLOCK + 10))
    assert (payment.status, payment.confirmations) == (CONFIRMING, 11)
    payment, events = handle_payment(payment, head(BLOCK + 11))
    assert (payment.status, payment.confirmations) == (CONFIRMED, 12)
    confirmed = events[0]
    assert isinstance(confirmed, PaymentConfirmed)
    assert confirmed.data.head_number == BLOCK + 11


def test_a_reorg_orphans_the_payment_and_a_reinclusion_counts_from_the_new_block() -> None:
    payment = run_payment(new_payment(required_confirmations=REQUIRED), head(BLOCK + 3), orphan())
    assert (payment.status, payment.confirmations, payment.counts) == (ORPHANED, 0, False)
    payment, events = handle_payment(
        payment,
        detect(
            block_number=NEW_BLOCK,
            block_id=block_id(NEW_BLOCK),
            required_confirmations=REQUIRED,
            head_number=NEW_BLOCK + 1,
        ),
    )
    assert [event.event_type for event in events] == [
        "PaymentDetected",
        "PaymentConfirmationsUpdated",
    ]
    assert (payment.status, payment.block_number, payment.confirmations) == (
        CONFIRMING,
        NEW_BLOCK,
        2,
    )
    assert payment.block_id == block_id(NEW_BLOCK)


def test_a_failed_payment_keeps_its_reason() -> None:
    payment = run_payment(new_payment(), fail_payment())
    assert payment.failure_reason == "transaction reverted"
    assert not payment.counts


def test_the_same_observation_twice_yields_the_same_events_and_changes_nothing() -> None:
    transfer = TransferObserved(
        tx_hash=tx_hash(7),
        log_index=2,
        block_number=BLOCK,
        block_id=block_id(BLOCK),
        block_timestamp=datetime(2025, 1, 1, 12, 1, tzinfo=UTC),
        contract_address=USDT_CONTRACT,
        from_address=CUSTOMER_ADDRESS,
        to_address=DEPOSIT_ADDRESS,
        amount=usdt("250"),
    )
    command = DetectPayment.from_transfer(
        transfer, invoice_id="inv_1", merchant_id="mer_1", required_confirmations=REQUIRED
    )
    assert command.payment_id == transfer.transfer_id
    payment, first = handle_payment(None, command)
    # Redelivered after the state was saved: the stored events come back, ids included.
    again, second = handle_payment(payment, command)
    assert second == first
    assert again == payment
    # Redelivered before the state was saved: deciding again gives identical events.
    _, third = handle_payment(None, command)
    assert third == first

    chain_head = ChainHeadAdvanced(
        head_number=BLOCK + 4,
        head_block_id=block_id(BLOCK + 4),
        solidified_number=BLOCK - 15,
        observed_at=datetime(2025, 1, 1, 12, 2, tzinfo=UTC),
    )
    update = UpdateConfirmations.from_head(payment.payment_id, chain_head)
    counted, events = handle_payment(payment, update)
    assert counted.confirmations == 5
    assert handle_payment(counted, update) == (counted, events)

    reorg = TransferOrphaned(
        tx_hash=tx_hash(7),
        log_index=2,
        block_number=BLOCK,
        block_id=block_id(BLOCK),
        to_address=DEPOSIT_ADDRESS,
    )
    orphaning = OrphanPayment.from_orphan(reorg, orphaned_at=chain_head.observed_at)
    orphaned, events = handle_payment(counted, orphaning)
    assert orphaned.status is ORPHANED
    assert handle_payment(orphaned, orphaning) == (orphaned, events)


def test_a_command_for_another_payment_is_refused() -> None:
    with pytest.raises(AggregateMismatch):
        new_payment().decide(head(BLOCK + 1, payment_id=payment_id_of(2)))


def test_replay_needs_the_detection_first() -> None:
    payment = run_payment(new_payment(), head(BLOCK + 2))
    with pytest.raises(ValueError, match="starts with PaymentDetected"):
        Payment._born(payment.history[1])


def test_the_payment_round_trips_through_its_table_form_exactly() -> None:
    payment = run_payment(new_payment(amount=usdt("12.345678")), head(BLOCK + 2))
    stored: dict[str, Any] = payment.to_dict()
    assert stored["amount"] == "12.345678"
    assert Payment.from_dict(stored) == payment
    detected = payment.history[0]
    assert isinstance(detected, PaymentDetected)
    assert detected.data.from_address == CUSTOMER_ADDRESS


def test_a_zero_value_transfer_is_not_a_payment() -> None:
    # Zero-value TRC-20 transfers are address-poisoning spam; they must never touch an invoice.
    with pytest.raises(AmountZero) as caught:
        detect(amount=0)
    assert caught.value.param == "amount"
