"""The payment agent's handler: registrations, transfers and chain heads in; payments out."""

from __future__ import annotations

from typing import Any

import pytest

from agents.payments import PaymentAgent
from app.domain.deposit import DepositRegistration
from app.domain.observations import TransferObserved, TransferOrphaned
from app.domain.statuses import PaymentStatus
from app.runtime.codecs import (
    ChainHeadMessage,
    DepositRegistered,
    OrphanMessage,
    TransferMessage,
    encode_deposit_message,
)
from tests.support.fakes import FakeEvent, MemoryWorld
from tests.unit.domain.factories import (
    BLOCK,
    DEPOSIT_ADDRESS,
    INVOICE_ID,
    T0,
    block_id,
    chain_head,
    deposit_registration,
    transfer_observed,
    tx_hash,
)

pytestmark = pytest.mark.component

TOPIC = "checkout.deposits"
PARTITION = 7
PAYMENT_ID = f"{tx_hash(1)}:0"


def registration(invoice_id: str = INVOICE_ID) -> DepositRegistration:
    return deposit_registration(invoice_id, amount="150")


def transfer(amount: str = "150") -> TransferObserved:
    return transfer_observed(amount=amount)


head = chain_head


def message(payload: Any, key: bytes = DEPOSIT_ADDRESS.encode()) -> FakeEvent:
    value = encode_deposit_message(payload) if not isinstance(payload, dict) else payload
    return FakeEvent(TOPIC, value, key=key, partition=PARTITION)


@pytest.fixture
def agent(world: MemoryWorld) -> PaymentAgent:
    return PaymentAgent(world.services.deposits, world.dead_letters)


async def test_a_transfer_becomes_a_payment_confirmed_by_the_chain_heads(
    world: MemoryWorld, agent: PaymentAgent
) -> None:
    await agent.handle(message(DepositRegistered.of(registration())))
    await agent.handle(message(TransferMessage(transfer=transfer())))
    # Its own block is its first confirmation.
    assert world.publisher.event_types() == ["PaymentDetected", "PaymentConfirmationsUpdated"]
    assert [type(c).__name__ for c in world.publisher.invoice_commands] == ["ApplyPaymentDetected"]

    await agent.handle(message(ChainHeadMessage(head=head(BLOCK + 1)), key=b"chain-head"))

    assert world.publisher.event_types()[-1] == "PaymentConfirmed"
    assert [type(c).__name__ for c in world.publisher.invoice_commands] == [
        "ApplyPaymentDetected",
        "ApplyPaymentConfirmed",
    ]
    account = world.tables.deposits.get(DEPOSIT_ADDRESS)
    assert account is not None
    assert account.payments[PAYMENT_ID].status is PaymentStatus.CONFIRMED
    assert world.tables.confirmation_watch.get(PARTITION).awaiting == ()  # nothing counts now
    assert world.dead_letter_topics.records() == []


async def test_a_redelivered_transfer_publishes_the_same_events_and_changes_nothing(
    world: MemoryWorld, agent: PaymentAgent
) -> None:
    await agent.handle(message(DepositRegistered.of(registration())))
    await agent.handle(message(TransferMessage(transfer=transfer())))
    first_events = list(world.publisher.events)
    first_commands = list(world.publisher.invoice_commands)
    account = world.tables.deposits.get(DEPOSIT_ADDRESS)
    world.publisher.clear()

    await agent.handle(message(TransferMessage(transfer=transfer())))  # Kafka delivers it again
    await agent.handle(message(DepositRegistered.of(registration())))  # and the registration

    assert [e.event_id for e in world.publisher.events] == [e.event_id for e in first_events]
    assert [c.command_id for c in world.publisher.invoice_commands] == [
        c.command_id for c in first_commands
    ]
    assert world.tables.deposits.get(DEPOSIT_ADDRESS) == account
    assert world.dead_letter_topics.records() == []


async def test_a_transfer_redelivered_after_its_confirmation_changes_nothing(
    world: MemoryWorld, agent: PaymentAgent
) -> None:
    await agent.handle(message(DepositRegistered.of(registration())))
    await agent.handle(message(TransferMessage(transfer=transfer())))
    detection = list(world.publisher.events)
    await agent.handle(message(ChainHeadMessage(head=head(BLOCK + 1)), key=b"chain-head"))
    confirmed = world.tables.deposits.get(DEPOSIT_ADDRESS)
    world.publisher.clear()

    # After a rebalance the transfer comes again, behind the head that confirmed it.
    await agent.handle(message(TransferMessage(transfer=transfer())))

    assert [e.event_id for e in world.publisher.events] == [e.event_id for e in detection]
    assert world.tables.deposits.get(DEPOSIT_ADDRESS) == confirmed  # still confirmed
    assert world.tables.confirmation_watch.get(PARTITION).awaiting == ()


async def test_an_older_head_redelivered_while_counting_changes_nothing(
    world: MemoryWorld, agent: PaymentAgent
) -> None:
    slow = deposit_registration(amount="150", required_confirmations=4)
    await agent.handle(message(DepositRegistered.of(slow)))
    await agent.handle(message(TransferMessage(transfer=transfer())))
    await agent.handle(message(ChainHeadMessage(head=head(BLOCK + 2)), key=b"chain-head"))
    counted = world.tables.deposits.get(DEPOSIT_ADDRESS)
    published = len(world.publisher.events)

    await agent.handle(message(ChainHeadMessage(head=head(BLOCK + 1)), key=b"chain-head"))

    assert len(world.publisher.events) == published  # confirmations only ever count up
    assert world.tables.deposits.get(DEPOSIT_ADDRESS) == counted
    assert world.tables.confirmation_watch.get(PARTITION).head == head(BLOCK + 2)


async def test_an_orphaned_payment_is_reverted_and_stops_awaiting_heads(
    world: MemoryWorld, agent: PaymentAgent
) -> None:
    await agent.handle(message(DepositRegistered.of(registration())))
    await agent.handle(message(TransferMessage(transfer=transfer())))
    assert world.tables.confirmation_watch.get(PARTITION).awaiting == (DEPOSIT_ADDRESS,)
    orphan = TransferOrphaned(
        tx_hash=tx_hash(1),
        log_index=0,
        block_number=BLOCK,
        block_id=block_id(BLOCK),
        to_address=DEPOSIT_ADDRESS,
    )
    await agent.handle(message(OrphanMessage(orphan=orphan, noticed_at=T0)))

    assert world.publisher.event_types()[-1] == "PaymentOrphaned"
    assert type(world.publisher.invoice_commands[-1]).__name__ == "ApplyPaymentOrphaned"
    assert world.tables.confirmation_watch.get(PARTITION).awaiting == ()


async def test_transfers_that_pay_nothing_are_ignored_not_dead_lettered(
    world: MemoryWorld, agent: PaymentAgent
) -> None:
    await agent.handle(message(TransferMessage(transfer=transfer())))  # nobody registered it
    await agent.handle(message(DepositRegistered.of(registration())))
    await agent.handle(message(TransferMessage(transfer=transfer(amount="0"))))  # spam
    # The money of the first is kept on record (unmatched); the spam brought none.
    assert world.publisher.event_types() == ["UnmatchedTransferReceived"]
    assert world.publisher.invoice_commands == []
    assert world.dead_letter_topics.records() == []


async def test_an_unmatched_transfer_that_cannot_be_recorded_is_retried_never_dropped(
    world: MemoryWorld, agent: PaymentAgent
) -> None:
    world.publisher.fail_next = ConnectionError("the broker is away")  # transient: retried
    await agent.handle(message(TransferMessage(transfer=transfer())))  # nobody registered it
    assert world.publisher.event_types() == ["UnmatchedTransferReceived"]
    assert world.dead_letter_topics.records() == []


async def test_an_address_registered_for_a_second_invoice_is_refused_to_the_dead_letter_topic(
    world: MemoryWorld, agent: PaymentAgent
) -> None:
    await agent.handle(message(DepositRegistered.of(registration())))
    await agent.handle(message(DepositRegistered.of(registration(invoice_id="inv_2"))))

    [record] = world.dead_letter_topics.records(TOPIC)
    assert record["agent"] == "payment_agent"
    assert record["error_type"] == "AddressConflict"
    assert record["error_code"] == "deposit_address_conflict"
    account = world.tables.deposits.get(DEPOSIT_ADDRESS)
    assert account is not None and account.registration.invoice_id == INVOICE_ID


@pytest.mark.parametrize(
    "value",
    [{"kind": "transfer_observed"}, {"no": "kind"}, {"kind": "meteor_strike", "at": 1}],
)
async def test_a_malformed_message_goes_to_the_dead_letter_topic(
    world: MemoryWorld, agent: PaymentAgent, value: dict[str, Any]
) -> None:
    event = message(value)
    await agent.handle(event)
    [record] = world.dead_letter_topics.records(TOPIC)
    assert record["agent"] == "payment_agent"
    assert record["source"]["partition"] == PARTITION
    assert record["value"] == {"text": event.message.value.decode()}
    assert world.publisher.events == []
