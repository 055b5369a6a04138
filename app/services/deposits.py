"""Process a deposit message: the payment agent's use case.

Everything about one deposit address — its registration by the invoice agent, the transfers to
it, their orphaning — arrives in order on its partition of ``checkout.deposits``, where the
address's account (app/domain/deposit.py) holds its invoice and payments: the join is local, no
global lookup. Every chain head reaches every partition, so each partition counts confirmations
for its own addresses, in order with their transfers.

Each payment change is a domain event; the ones the invoice must know (detected, confirmed,
orphaned, failed) become invoice commands (app/domain/policies.py). Decide, store, publish, tell
the invoice: in that order a redelivered message re-sends the same events and commands (same
ids) and changes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import assert_never

from prometheus_client import Counter

from app.domain.commands import PaymentCommand
from app.domain.deposit import (
    DepositAccount,
    DepositRegistration,
    Ignored,
    accept_transfer,
)
from app.domain.events import UnmatchedTransferReceived
from app.domain.observations import ChainHeadAdvanced, TransferObserved, TransferOrphaned
from app.domain.policies import invoice_command_for
from app.services.ports import (
    ChainProgress,
    ConfirmationWatches,
    DepositAccounts,
    EventPublisher,
    InvoiceCommandSender,
)

logger = logging.getLogger(__name__)

TRANSFERS_IGNORED = Counter(
    "checkout_transfers_ignored",
    "USDT transfers seen on chain that pay no invoice",
    ["reason"],
)
# Per observation: a redelivered transfer is counted again (its record is kept once).
UNMATCHED_TRANSFERS = Counter(
    "checkout_unmatched_transfers",
    "Transfers of USDT to our deposit addresses that paid no invoice, recorded as unmatched",
    ["reason"],
)
UNMATCHED_MICRO_USDT = Counter(
    "checkout_unmatched_micro_usdt",
    "Micro-USDT received at our deposit addresses that paid no invoice (1 USDT = 1,000,000)",
    ["reason"],
)
HEADS_REWOUND = Counter(
    "checkout_chain_heads_rewound",
    "Chain heads that moved a partition's head back: a reorg or a replaced node (per partition)",
)


class DepositProcessing:
    def __init__(
        self,
        accounts: DepositAccounts,
        watches: ConfirmationWatches,
        events: EventPublisher,
        invoice_commands: InvoiceCommandSender,
        progress: ChainProgress,
    ) -> None:
        self._accounts = accounts
        self._progress = progress
        self._watches = watches
        self._events = events
        self._invoice_commands = invoice_commands

    def register(self, registration: DepositRegistration) -> None:
        """Open the address's account; ``AddressConflict`` if another invoice has it."""
        known = self._accounts.get(registration.deposit_address)
        if known is None:
            self._accounts.put(DepositAccount.open(registration))
        else:
            renewed = known.register(registration)
            if renewed is not known:
                self._accounts.put(renewed)

    async def on_transfer(self, transfer: TransferObserved, partition: int) -> Ignored | None:
        """Detect a transfer as a payment of the address's invoice, or say why it is not one."""
        account = self._accounts.get(transfer.to_address)
        decision = accept_transfer(
            account, transfer, self._watches.get(partition).head_for(transfer)
        )
        if isinstance(decision, Ignored):
            await self._ignore(transfer, decision, account)
            return decision
        assert account is not None  # accepted: the address has an account
        await self._apply(account, decision, partition)
        return None

    async def on_orphan(
        self, orphan: TransferOrphaned, noticed_at: datetime, partition: int
    ) -> None:
        account = self._accounts.get(orphan.to_address)
        command = None if account is None else account.orphan(orphan, noticed_at)
        if account is not None and command is not None:  # else a transfer we never applied
            await self._apply(account, command, partition)

    async def on_chain_head(self, head: ChainHeadAdvanced, partition: int) -> None:
        """Count confirmations of every payment of this partition still counting."""
        before = self._watches.get(partition)
        watch = before.advance(head)
        if watch is None:
            return  # a head seen before, redelivered: confirmations only ever count up
        if before.rewound(head):
            HEADS_REWOUND.inc()
            logger.warning(
                "partition %d: chain head back to block %d (%s), from %s: the chain was replaced "
                "above it; confirmations count from the new branch",
                partition,
                head.head_number,
                head.head_block_id,
                before.head.head_number if before.head is not None else None,
            )
        self._watches.put(partition, watch)
        for address in watch.awaiting:
            account = self._accounts.get(address)
            if account is None:  # pragma: no cover - an awaiting address always has an account
                continue
            for update in account.confirmations_at(head):
                account = await self._apply(account, update, partition)

    def chain_head_acknowledged(self, head: ChainHeadAdvanced, partition: int) -> None:
        """The head's message is acknowledged, and with it (in order) every message of the
        partition before it: every transfer up to the head was applied and what it told its
        invoice is on the broker. Invoice expiry may count on it (app/services/expiry.py); noted
        any earlier, a failed send could let an invoice expire before its payment counted."""
        self._progress.note(partition, head)

    async def _apply(
        self, account: DepositAccount, command: PaymentCommand, partition: int
    ) -> DepositAccount:
        """Decide, store, publish, and tell the invoice: the order that makes a retry harmless."""
        updated, events = account.apply(command)
        if updated is not account:
            self._accounts.put(updated)
        watch = self._watches.get(partition)
        tracked = watch.track(updated)
        if tracked is not watch:
            self._watches.put(partition, tracked)
        await self._events.publish_events(events)
        commands = [cmd for cmd in map(invoice_command_for, events) if cmd is not None]
        await self._invoice_commands.send_invoice_commands(commands)
        return updated

    async def _ignore(
        self, transfer: TransferObserved, ignored: Ignored, account: DepositAccount | None
    ) -> None:
        """Count a transfer that pays no invoice and keep a record of the money it brought.

        The record is an ``UnmatchedTransferReceived`` (its id derived from the transfer, so a
        redelivery records it once), projected into ``unmatched_transfers`` for the operators
        (``checkout chain unmatched``, docs/operations.md). A failure to publish it propagates:
        the agent retries the message or dead-letters it, never acknowledges the money away.
        """
        TRANSFERS_IGNORED.labels(reason=ignored.reason).inc()
        match ignored.reason:
            case "zero_amount":
                # Address-poisoning spam: no money moved, and anyone can send it to any address
                # for the cost of a little energy. A record of each would let strangers flood the
                # operators' list with nothing to refund: counted only.
                return
            case "not_a_deposit_address":
                # The watcher publishes only transfers to our deposit addresses, and an address is
                # registered here before its invoice is handed out: this should not happen, so
                # say so.
                logger.warning(
                    "transfer %s to %s: no invoice registered for this address here; not "
                    "applied, recorded as unmatched",
                    transfer.transfer_id,
                    transfer.to_address,
                )
                event = UnmatchedTransferReceived.of(transfer, ignored.reason)
            case "after_monitoring_window":
                assert account is not None  # only a registered address has a monitoring window
                registration = account.registration
                logger.warning(
                    "transfer %s to %s of invoice %s came after its monitoring window; not "
                    "applied, recorded as unmatched",
                    transfer.transfer_id,
                    transfer.to_address,
                    registration.invoice_id,
                )
                event = UnmatchedTransferReceived.of(
                    transfer,
                    ignored.reason,
                    invoice_id=registration.invoice_id,
                    merchant_id=registration.merchant_id,
                )
            case _:  # pragma: no cover - mypy proves every reason is handled
                assert_never(ignored.reason)
        await self._events.publish_events([event])
        UNMATCHED_TRANSFERS.labels(reason=event.data.reason).inc()
        UNMATCHED_MICRO_USDT.labels(reason=event.data.reason).inc(transfer.amount)
