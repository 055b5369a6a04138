"""The deposit account: which transfers become payments, and who still counts confirmations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.domain.commands import DetectPayment
from app.domain.deposit import (
    RECENT_HEADS,
    AddressConflict,
    ConfirmationWatch,
    DepositAccount,
    DepositRegistration,
    Ignored,
    accept_transfer,
)
from app.domain.observations import TransferObserved, TransferOrphaned
from app.domain.statuses import PaymentStatus

from .factories import (
    BLOCK,
    DEPOSIT_ADDRESS,
    INVOICE_ID,
    MERCHANT_ID,
    MONITOR_UNTIL,
    T0,
    block_id,
    chain_head,
    deposit_registration,
    transfer_observed,
    tx_hash,
)

pytestmark = pytest.mark.unit


def registration(invoice_id: str = INVOICE_ID, required: int = 2) -> DepositRegistration:
    return deposit_registration(invoice_id, required_confirmations=required)


transfer = transfer_observed


def paid_account(*transfers: TransferObserved) -> DepositAccount:
    account = DepositAccount.open(registration())
    for observed in transfers:
        command = accept_transfer(account, observed, None)
        assert isinstance(command, DetectPayment)
        account, _ = account.apply(command)
    return account


def test_a_transfer_to_an_unregistered_address_pays_nothing() -> None:
    assert accept_transfer(None, transfer(), None) == Ignored("not_a_deposit_address")


def test_a_zero_value_transfer_is_spam_not_a_payment() -> None:
    account = DepositAccount.open(registration())
    assert accept_transfer(account, transfer(amount="0"), None) == Ignored("zero_amount")


def test_a_transfer_after_the_monitoring_window_is_not_matched() -> None:
    late = transfer(block_timestamp=MONITOR_UNTIL + timedelta(seconds=1))
    account = DepositAccount.open(registration())
    assert accept_transfer(account, late, None) == Ignored("after_monitoring_window")


def test_a_transfer_becomes_a_payment_of_the_registered_invoice() -> None:
    account = DepositAccount.open(registration(required=12))
    command = accept_transfer(account, transfer(), chain_head(BLOCK + 3))
    assert isinstance(command, DetectPayment)
    assert (command.invoice_id, command.merchant_id) == (INVOICE_ID, MERCHANT_ID)
    assert command.required_confirmations == 12
    assert command.head_number == BLOCK + 3


def test_the_head_is_never_below_the_transfers_block() -> None:
    account = DepositAccount.open(registration())
    command = accept_transfer(account, transfer(block=BLOCK + 5), chain_head(BLOCK))
    assert isinstance(command, DetectPayment)
    assert command.head_number == BLOCK + 5


def test_registering_again_for_the_same_invoice_changes_nothing() -> None:
    account = DepositAccount.open(registration())
    assert account.register(registration()) is account


def test_an_address_never_belongs_to_a_second_invoice() -> None:
    account = DepositAccount.open(registration())
    with pytest.raises(AddressConflict) as refused:
        account.register(registration(invoice_id="inv_2"))
    assert refused.value.param == "deposit_address"
    assert "inv_1" in refused.value.message and "inv_2" in refused.value.message


def test_a_redelivered_transfer_yields_the_same_events_and_the_same_account() -> None:
    account = paid_account(transfer())
    command = accept_transfer(account, transfer(), None)
    assert isinstance(command, DetectPayment)
    again, events = account.apply(command)
    assert again is account
    first = account.payments[command.payment_id].history
    assert [event.event_id for event in events] == [
        event.event_id for event in first if event.causation_id == command.command_id
    ]


def test_only_payments_still_counting_are_asked_for_confirmations() -> None:
    account = paid_account(transfer(1), transfer(2))
    assert account.counting
    updates = account.confirmations_at(chain_head(BLOCK + 1))
    assert {update.payment_id for update in updates} == set(account.payments)
    for update in updates:
        account, _ = account.apply(update)  # 2 of 2 confirmations: both confirmed
    assert {p.status for p in account.payments.values()} == {PaymentStatus.CONFIRMED}
    assert not account.counting
    assert account.confirmations_at(chain_head(BLOCK + 2)) == []


def test_an_orphan_of_an_unknown_transfer_is_nothing_to_do() -> None:
    account = paid_account(transfer(1))
    unknown = TransferOrphaned(
        tx_hash=tx_hash(9),
        log_index=0,
        block_number=BLOCK,
        block_id=block_id(BLOCK),
        to_address=DEPOSIT_ADDRESS,
    )
    assert account.orphan(unknown, T0) is None
    known = unknown.model_copy(update={"tx_hash": tx_hash(1)})
    command = account.orphan(known, T0)
    assert command is not None and command.payment_id == f"{tx_hash(1)}:0"


def test_the_account_round_trips_through_its_table_form() -> None:
    account = paid_account(transfer(1), transfer(2, amount="1"))
    assert DepositAccount.from_dict(account.to_dict()) == account


def test_accounts_stored_by_earlier_versions_are_read() -> None:
    stored = paid_account(transfer(1)).to_dict()
    stored["registration"]["kind"] = "deposit_registered"  # as the message was stored before
    assert DepositAccount.from_dict(stored).registration == registration()


def other_branch(n: int) -> str:
    return f"{n + 0xF0F0:064x}"  # a block id at height n on a branch that replaced ours


def test_a_head_seen_before_is_a_redelivery_and_an_older_one_never_moves_the_watch_back() -> None:
    watch = ConfirmationWatch().advance(chain_head(BLOCK + 5))
    assert watch is not None
    assert watch.advance(chain_head(BLOCK + 5)) is None  # the same head again
    assert watch.advance(chain_head(BLOCK + 4)) is None  # older than any head remembered
    later = watch.advance(chain_head(BLOCK + 9))
    assert later is not None and later.recent == (
        (BLOCK + 5, block_id(BLOCK + 5)),
        (BLOCK + 9, block_id(BLOCK + 9)),
    )
    assert later.advance(chain_head(BLOCK + 5)) is None  # redelivered after a newer one


def test_a_head_of_another_branch_moves_the_watch_back_to_it() -> None:
    watch = ConfirmationWatch()
    for n in range(BLOCK, BLOCK + 10):
        advanced = watch.advance(chain_head(n))
        assert advanced is not None
        watch = advanced
    # The watcher unwound a reorg to the fork point BLOCK + 6 and published it as a head.
    fork = chain_head(BLOCK + 6)
    assert watch.advance(fork) is None  # the fork point itself is still ours: nothing replaced
    replaced = chain_head(BLOCK + 7).model_copy(update={"head_block_id": other_branch(BLOCK + 7)})
    assert watch.rewound(replaced)
    back = watch.advance(replaced)
    assert back is not None and back.head == replaced
    assert back.recent[-1] == (BLOCK + 7, other_branch(BLOCK + 7))
    assert [number for number, _ in back.recent] == list(range(BLOCK, BLOCK + 8))
    # A head between the remembered ones, never seen: a rewind to it (a reset node, a fork
    # point at a height no head was published for).
    sparse = ConfirmationWatch().advance(chain_head(BLOCK))
    assert sparse is not None
    sparse = sparse.advance(chain_head(BLOCK + 10))
    assert sparse is not None
    rewound = sparse.advance(chain_head(BLOCK + 4))
    assert rewound is not None and rewound.head is not None
    assert rewound.head.head_number == BLOCK + 4 and sparse.rewound(chain_head(BLOCK + 4))
    assert not sparse.rewound(chain_head(BLOCK + 11))


def test_a_transfer_of_another_branch_does_not_count_from_a_head_of_the_replaced_one() -> None:
    watch = ConfirmationWatch()
    for n in (BLOCK, BLOCK + 3, BLOCK + 6):
        advanced = watch.advance(chain_head(n))
        assert advanced is not None
        watch = advanced
    ours = transfer(1, block=BLOCK + 3)
    assert watch.head_for(ours) == watch.head
    moved = transfer(1, block=BLOCK + 3, block_id=other_branch(BLOCK + 3))
    assert watch.head_for(moved) is None
    unknown_height = transfer(1, block=BLOCK + 4, block_id=other_branch(BLOCK + 4))
    assert watch.head_for(unknown_height) == watch.head  # nothing says otherwise


def test_the_watch_remembers_a_bounded_number_of_heads_and_reads_older_stored_ones() -> None:
    watch = ConfirmationWatch()
    for n in range(BLOCK, BLOCK + RECENT_HEADS + 10):
        advanced = watch.advance(chain_head(n))
        assert advanced is not None
        watch = advanced
    assert len(watch.recent) == RECENT_HEADS
    assert watch.recent[0][0] == BLOCK + 10
    assert ConfirmationWatch.from_dict(watch.to_dict()) == watch
    stored_before = {"head": chain_head(BLOCK).model_dump(mode="json"), "awaiting": []}
    old = ConfirmationWatch.from_dict(stored_before)
    assert old.recent == () and old.advance(chain_head(BLOCK - 1)) is None


def test_an_address_awaits_heads_exactly_while_it_counts() -> None:
    account = paid_account(transfer(1))
    watch = ConfirmationWatch().track(account)
    assert watch.awaiting == (DEPOSIT_ADDRESS,)
    assert watch.track(account) is watch
    for update in account.confirmations_at(chain_head(BLOCK + 1)):
        account, _ = account.apply(update)
    assert watch.track(account).awaiting == ()
    assert ConfirmationWatch.from_dict(watch.to_dict()) == watch
