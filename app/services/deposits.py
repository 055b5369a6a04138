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

from prometheus_client import Counter

from app.domain.commands import PaymentCommand
from app.domain.deposit import (
    DepositAccount,
    DepositRegistration,
    Ignored,
    accept_transfer,
)
from app.domain.observations import ChainHeadAdvanced, TransferObserved, TransferOrphaned
from app.domain.policies import invoice_command_for
from app.services.ports import (
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


class DepositProcessing:
    def __init__(
        self,
        accounts: DepositAccounts,
        watches: ConfirmationWatches,
        events: EventPublisher,
        invoice_commands: InvoiceCommandSender,
    ) -> None:
        self._accounts = accounts
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
        decision = accept_transfer(account, transfer, self._watches.get(partition).head)
        if isinstance(decision, Ignored):
            self._ignore(transfer, decision, account)
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
        watch = self._watches.get(partition).advance(head)
        if watch is None:
            return  # an older head redelivered: confirmations only ever count up
        self._watches.put(partition, watch)
        for address in watch.awaiting:
            account = self._accounts.get(address)
            if account is None:  # pragma: no cover - an awaiting address always has an account
                continue
            for update in account.confirmations_at(head):
                account = await self._apply(account, update, partition)

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

    def _ignore(
        self, transfer: TransferObserved, ignored: Ignored, account: DepositAccount | None
    ) -> None:
        TRANSFERS_IGNORED.labels(reason=ignored.reason).inc()
        if ignored.reason == "not_a_deposit_address":
            # The watcher publishes only transfers to our deposit addresses, and an address is
            # registered here before its invoice is handed out: this should not happen, so say so.
            logger.warning(
                "transfer %s to %s: no invoice registered for this address here; not applied",
                transfer.transfer_id,
                transfer.to_address,
            )
        elif ignored.reason == "after_monitoring_window" and account is not None:
            logger.warning(
                "transfer %s to %s of invoice %s came after its monitoring window; not applied",
                transfer.transfer_id,
                transfer.to_address,
                account.registration.invoice_id,
            )
