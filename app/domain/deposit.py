"""The deposit account: what the platform knows about one deposit address, and its rules.

A deposit address belongs to exactly one invoice, for good: the invoice agent registers it when
the invoice is created, before the address is handed out. Transfers to the address become
payments of that invoice while the invoice is still watched (its monitoring window: expiry plus
the late-payment window); a zero-value transfer is address-poisoning spam, never a payment; a
transfer to an address nobody registered pays nothing. A payment keeps counting confirmations
until it is confirmed or fails (``confirmation_watch``: the chain heads decide).

Everything here is pure: the payment agent (agents/payments.py, through
app/services/deposits.py) reads an account from its table, asks it what a message means, stores
what comes back and publishes the events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.domain.commands import DetectPayment, OrphanPayment, PaymentCommand, UpdateConfirmations
from app.domain.errors import Conflict
from app.domain.events import PaymentEvent
from app.domain.fields import Identifier, TronAddress, UtcDatetime
from app.domain.money import PositiveUsdt
from app.domain.observations import ChainHeadAdvanced, TransferObserved, TransferOrphaned
from app.domain.payment import Payment, handle_payment
from app.domain.statuses import PaymentStatus

# Payments in these statuses still wait for chain heads.
COUNTING: Final = frozenset({PaymentStatus.DETECTED, PaymentStatus.CONFIRMING})

IgnoredReason = Literal["not_a_deposit_address", "zero_amount", "after_monitoring_window"]


class AddressConflict(Conflict):
    """A deposit address registered for a second invoice: addresses are never reused."""

    code = "deposit_address_conflict"


class DepositRegistration(BaseModel):
    """A deposit address now belongs to an invoice: what the payment agent needs to know of it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deposit_address: TronAddress
    invoice_id: Identifier
    merchant_id: Identifier
    amount: PositiveUsdt
    required_confirmations: int = Field(ge=1)
    expires_at: UtcDatetime
    monitor_until: UtcDatetime = Field(
        description="transfers after this instant are no longer matched to the invoice"
    )


@dataclass(frozen=True)
class Ignored:
    """A transfer that pays no invoice, and why."""

    reason: IgnoredReason


@dataclass(frozen=True)
class DepositAccount:
    """One deposit address: its invoice's registration and the payments made to it."""

    registration: DepositRegistration
    payments: Mapping[str, Payment]

    @classmethod
    def open(cls, registration: DepositRegistration) -> DepositAccount:
        return cls(registration, {})

    @property
    def address(self) -> str:
        return self.registration.deposit_address

    def register(self, registration: DepositRegistration) -> DepositAccount:
        """The same registration again changes nothing; another invoice's is refused. The same
        invoice's with a later ``monitor_until`` (the merchant extended an underpaid invoice)
        keeps watching the address until then; an earlier one never shortens the watch."""
        if registration.invoice_id != self.registration.invoice_id:
            raise AddressConflict(
                f"deposit address {registration.deposit_address} already belongs to invoice "
                f"{self.registration.invoice_id}, not {registration.invoice_id}",
                param="deposit_address",
            )
        if registration.monitor_until > self.registration.monitor_until:
            return DepositAccount(registration, self.payments)
        return self

    def detect(self, transfer: TransferObserved, head: ChainHeadAdvanced | None) -> DetectPayment:
        """The command that makes ``transfer`` a payment of this address's invoice.

        ``head`` is the last chain head this address's partition saw: the payment's confirmations
        count from it (never below the transfer's own block).
        """
        registration = self.registration
        return DetectPayment.from_transfer(
            transfer,
            invoice_id=registration.invoice_id,
            merchant_id=registration.merchant_id,
            required_confirmations=registration.required_confirmations,
            head_number=None if head is None else max(head.head_number, transfer.block_number),
        )

    def orphan(self, orphan: TransferOrphaned, noticed_at: datetime) -> OrphanPayment | None:
        """The command for a reorganised transfer; None for one never applied here."""
        if orphan.transfer_id not in self.payments:
            return None
        return OrphanPayment.from_orphan(orphan, orphaned_at=noticed_at)

    def apply(self, command: PaymentCommand) -> tuple[DepositAccount, list[PaymentEvent]]:
        """Decide ``command`` on its payment: the account after it, and the events to publish.

        A redelivered command yields the events it yielded the first time (same ids) and leaves
        the account as it is.
        """
        current = self.payments.get(command.aggregate_id)
        payment, events = handle_payment(current, command)
        if payment is current:
            return self, events
        updated = DepositAccount(self.registration, {**self.payments, payment.payment_id: payment})
        return updated, events

    @property
    def counting(self) -> bool:
        """Some payment still waits for confirmations."""
        return any(payment.status in COUNTING for payment in self.payments.values())

    def confirmations_at(self, head: ChainHeadAdvanced) -> list[UpdateConfirmations]:
        """What ``head`` asks of the payments still counting."""
        return [
            UpdateConfirmations.from_head(payment_id, head)
            for payment_id, payment in self.payments.items()
            if payment.status in COUNTING
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe values for the ``deposits`` table; ``from_dict`` reads them back."""
        return {
            "registration": self.registration.model_dump(mode="json"),
            "payments": {pid: payment.to_dict() for pid, payment in self.payments.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DepositAccount:
        # Accounts stored by earlier versions carry the message's "kind" in their registration.
        registration = {k: v for k, v in data["registration"].items() if k != "kind"}
        return cls(
            DepositRegistration.model_validate(registration),
            {pid: Payment.from_dict(stored) for pid, stored in data["payments"].items()},
        )


def accept_transfer(
    account: DepositAccount | None, transfer: TransferObserved, head: ChainHeadAdvanced | None
) -> DetectPayment | Ignored:
    """What a transfer to a deposit address is: a payment to detect, or one to ignore."""
    if account is None:
        return Ignored("not_a_deposit_address")
    if transfer.amount == 0:
        return Ignored("zero_amount")
    if transfer.block_timestamp > account.registration.monitor_until:
        return Ignored("after_monitoring_window")
    return account.detect(transfer, head)


# How many recent chain heads a partition remembers by block id: enough to recognise a redelivered
# head (redeliveries reach back a commit interval, a few heads) from a head of another branch.
RECENT_HEADS: Final = 64


@dataclass(frozen=True)
class ConfirmationWatch:
    """One partition of deposit addresses: the last chain head seen, and who still counts.

    Chain heads reach every partition; each counts confirmations for its own addresses, in order
    with their transfers. ``awaiting`` lists the addresses with a payment still counting.

    A head is trusted only while its block is on the chain the watcher follows: ``recent`` keeps
    the block ids of the last heads, so a head (or a transfer) whose block id differs from the one
    kept at its height shows that the chain was replaced below the head. The watch then moves
    back to that head instead of counting confirmations from blocks that no longer exist — after
    a reorg (the watcher publishes the fork point as a head) or when a node was reset or
    replaced. A head lower than the last one and never seen is such a rewind too; one seen
    before is a redelivery and changes nothing.
    """

    head: ChainHeadAdvanced | None = None
    awaiting: tuple[str, ...] = ()
    recent: tuple[tuple[int, str], ...] = ()  # (height, block id) of the last heads, ascending

    def block_id_at(self, height: int) -> str | None:
        """The block id of the head seen at ``height``, if it is among the recent ones."""
        for number, block_id in reversed(self.recent):
            if number == height:
                return block_id
        return None

    def advance(self, head: ChainHeadAdvanced) -> ConfirmationWatch | None:
        """The watch at ``head``; None for a head seen before (confirmations only go up)."""
        known = self.block_id_at(head.head_number)
        if known == head.head_block_id:
            return None  # redelivered
        if self.head is not None and head.head_number <= self.head.head_number and known is None:
            lowest = self.recent[0][0] if self.recent else self.head.head_number
            if head.head_number < lowest:
                return None  # older than any head remembered: a late redelivery
        kept = tuple(entry for entry in self.recent if entry[0] < head.head_number)
        recent = (*kept, (head.head_number, head.head_block_id))[-RECENT_HEADS:]
        return ConfirmationWatch(head, self.awaiting, recent)

    def rewound(self, head: ChainHeadAdvanced) -> bool:
        """True when ``head`` (accepted by ``advance``) moved the watch back: a chain replaced."""
        current = self.head
        if current is None or head.head_number > current.head_number:
            return False
        return head.head_number < current.head_number or head.head_block_id != current.head_block_id

    def head_for(self, transfer: TransferObserved) -> ChainHeadAdvanced | None:
        """The head to count ``transfer``'s confirmations from; None when it cannot be trusted.

        A transfer in a block the watch knows under another id comes from a branch that replaced
        the one the head is on: it counts from the next head, not from blocks now gone.
        """
        known = self.block_id_at(transfer.block_number)
        if known is not None and known != transfer.block_id:
            return None
        return self.head

    def track(self, account: DepositAccount) -> ConfirmationWatch:
        """The watch with ``account`` awaiting heads exactly while it counts (self if unchanged)."""
        address = account.address
        if account.counting and address not in self.awaiting:
            return ConfirmationWatch(self.head, (*self.awaiting, address), self.recent)
        if not account.counting and address in self.awaiting:
            awaiting = tuple(a for a in self.awaiting if a != address)
            return ConfirmationWatch(self.head, awaiting, self.recent)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "head": None if self.head is None else self.head.model_dump(mode="json"),
            "awaiting": list(self.awaiting),
            "recent": [list(entry) for entry in self.recent],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConfirmationWatch:
        head = data.get("head")
        return cls(
            None if head is None else ChainHeadAdvanced.model_validate(head),
            tuple(data.get("awaiting", ())),
            tuple((int(number), str(block_id)) for number, block_id in data.get("recent", ())),
        )
