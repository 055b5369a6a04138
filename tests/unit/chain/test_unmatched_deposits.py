"""The payment agent's use case keeps a record of every transfer that brought money and paid no
invoice (app/services/deposits.py, ``_ignore``): an UnmatchedTransferReceived, published before
the message counts as handled, once per transfer however often it is delivered."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from app.domain.commands import InvoiceCommand
from app.domain.deposit import ConfirmationWatch, DepositAccount, Ignored
from app.domain.events import DomainEvent, UnmatchedTransferReceived
from app.domain.observations import ChainHeadAdvanced
from app.services.deposits import DepositProcessing
from tests.unit.domain.factories import (
    BLOCK,
    DEPOSIT_ADDRESS,
    INVOICE_ID,
    MERCHANT_ID,
    MONITOR_UNTIL,
    deposit_registration,
    transfer_observed,
    tx_hash,
)

pytestmark = pytest.mark.unit

PARTITION = 3


@dataclass
class Accounts:
    by_address: dict[str, DepositAccount] = field(default_factory=dict)

    def get(self, deposit_address: str) -> DepositAccount | None:
        return self.by_address.get(deposit_address)

    def put(self, account: DepositAccount) -> None:
        self.by_address[account.address] = account


@dataclass
class Watches:
    by_partition: dict[int, ConfirmationWatch] = field(default_factory=dict)

    def get(self, partition: int) -> ConfirmationWatch:
        return self.by_partition.get(partition, ConfirmationWatch())

    def put(self, partition: int, watch: ConfirmationWatch) -> None:
        self.by_partition[partition] = watch


@dataclass
class Publisher:
    events: list[DomainEvent] = field(default_factory=list)
    invoice_commands: list[InvoiceCommand] = field(default_factory=list)
    failure: BaseException | None = None

    async def publish_events(self, events: Iterable[DomainEvent]) -> None:
        if self.failure is not None:
            raise self.failure
        self.events.extend(events)

    async def send_invoice_commands(self, commands: Iterable[InvoiceCommand]) -> None:
        self.invoice_commands.extend(commands)


class NoProgress:
    def note(self, partition: int, head: ChainHeadAdvanced) -> None:
        pass

    async def chain_time(self) -> datetime | None:
        return None


@dataclass
class Deposits:
    accounts: Accounts = field(default_factory=Accounts)
    publisher: Publisher = field(default_factory=Publisher)

    @property
    def processing(self) -> DepositProcessing:
        return DepositProcessing(
            accounts=self.accounts,
            watches=Watches(),
            events=self.publisher,
            invoice_commands=self.publisher,
            progress=NoProgress(),
        )


def counted(name: str, reason: str) -> float:
    return REGISTRY.get_sample_value(name, {"reason": reason}) or 0.0


@pytest.fixture
def deposits() -> Deposits:
    return Deposits()


async def test_money_to_an_address_nobody_registered_here_is_recorded_as_unmatched(
    deposits: Deposits,
) -> None:
    reason = "not_a_deposit_address"
    before = [
        counted(name, reason)
        for name in (
            "checkout_transfers_ignored_total",
            "checkout_unmatched_transfers_total",
            "checkout_unmatched_micro_usdt_total",
        )
    ]

    decision = await deposits.processing.on_transfer(transfer_observed(amount="7.25"), PARTITION)

    assert decision == Ignored(reason)
    [event] = deposits.publisher.events
    assert isinstance(event, UnmatchedTransferReceived)
    assert event.aggregate_id == f"{tx_hash(1)}:0"
    assert event.data.to_address == DEPOSIT_ADDRESS
    assert event.data.amount == 7_250_000
    assert (event.data.reason, event.data.invoice_id) == (reason, None)
    assert deposits.publisher.invoice_commands == []  # no invoice is told anything
    assert counted("checkout_transfers_ignored_total", reason) == before[0] + 1
    assert counted("checkout_unmatched_transfers_total", reason) == before[1] + 1
    assert counted("checkout_unmatched_micro_usdt_total", reason) == before[2] + 7_250_000


async def test_money_after_the_monitoring_window_names_its_invoice_and_pays_nothing(
    deposits: Deposits,
) -> None:
    processing = deposits.processing
    processing.register(deposit_registration())
    late = transfer_observed(block_timestamp=MONITOR_UNTIL + timedelta(seconds=1))

    decision = await processing.on_transfer(late, PARTITION)

    assert decision == Ignored("after_monitoring_window")
    [event] = deposits.publisher.events
    assert isinstance(event, UnmatchedTransferReceived)
    assert event.merchant_id == MERCHANT_ID
    assert (event.data.reason, event.data.invoice_id, event.data.merchant_id) == (
        "after_monitoring_window",
        INVOICE_ID,
        MERCHANT_ID,
    )
    account = deposits.accounts.get(DEPOSIT_ADDRESS)
    assert account is not None and account.payments == {}  # not a payment of the invoice
    assert deposits.publisher.invoice_commands == []


async def test_a_redelivered_or_reincluded_transfer_publishes_the_same_event_id(
    deposits: Deposits,
) -> None:
    processing = deposits.processing
    await processing.on_transfer(transfer_observed(), PARTITION)
    await processing.on_transfer(transfer_observed(), PARTITION)  # Kafka delivers it again
    await processing.on_transfer(transfer_observed(block=BLOCK + 2), PARTITION)  # after a reorg

    ids = {event.event_id for event in deposits.publisher.events}
    assert len(deposits.publisher.events) == 3 and len(ids) == 1  # the projection keeps one


async def test_zero_value_spam_is_only_counted(deposits: Deposits) -> None:
    processing = deposits.processing
    processing.register(deposit_registration())
    spam_before = counted("checkout_transfers_ignored_total", "zero_amount")

    decision = await processing.on_transfer(transfer_observed(amount="0"), PARTITION)

    assert decision == Ignored("zero_amount")
    assert deposits.publisher.events == []
    assert counted("checkout_transfers_ignored_total", "zero_amount") == spam_before + 1


async def test_a_record_that_cannot_be_published_fails_the_message(deposits: Deposits) -> None:
    # The agent retries the message or dead-letters it: the money is never acknowledged away.
    deposits.publisher.failure = ConnectionError("kafka is away")
    reason = "not_a_deposit_address"
    recorded_before = counted("checkout_unmatched_transfers_total", reason)

    with pytest.raises(ConnectionError):
        await deposits.processing.on_transfer(transfer_observed(), PARTITION)

    assert counted("checkout_unmatched_transfers_total", reason) == recorded_before
