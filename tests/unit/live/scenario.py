"""Realistic domain event streams for the live view tests, made by the domain's own handlers.

The invoice and payment aggregates are driven the way the agents drive them (payment events →
``policies.invoice_command_for`` → invoice events), so the tests see the very events, versions
and ids the platform emits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from app.domain.commands import CancelInvoice, ExpireInvoice, FailPayment, OrphanPayment
from app.domain.events import DomainEvent
from app.domain.invoice import Invoice, handle_invoice
from app.domain.payment import Payment, handle_payment
from app.domain.policies import invoice_command_for
from tests.unit.domain.factories import (
    AFTER_EXPIRY,
    BLOCK,
    T0,
    block_id,
    create_invoice,
    detect,
    fresh_id,
    head,
    tx_hash,
    usdt,
)


@dataclass
class Scenario:
    """One invoice and its payments; ``events`` is every domain event in emission order."""

    invoice_id: str = "inv_live_1"
    amount: str = "150"
    events: list[DomainEvent] = field(default_factory=list)
    invoice: Invoice | None = None
    payments: dict[str, Payment] = field(default_factory=dict)
    _blocks: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        command = create_invoice(invoice_id=self.invoice_id, amount=usdt(self.amount))
        self.invoice, created = handle_invoice(None, command)
        self.events.extend(created)

    @property
    def required(self) -> int:
        assert self.invoice is not None
        return self.invoice.required_confirmations

    def _payment_events(self, payment_id: str, events: list[DomainEvent]) -> list[DomainEvent]:
        emitted: list[DomainEvent] = list(events)
        for event in events:
            command = invoice_command_for(event)
            if command is not None:
                self.invoice, invoice_events = handle_invoice(self.invoice, command)
                emitted.extend(invoice_events)
        self.events.extend(emitted)
        return emitted

    def pay(self, amount: str, *, n: int = 1, block: int = BLOCK) -> str:
        """A transfer of ``amount`` in ``block``; returns its payment id. The same ``n`` again
        is the transfer included again (after ``orphan``), in ``block``."""
        command = detect(
            invoice_id=self.invoice_id,
            tx_hash=tx_hash(n),
            amount=usdt(amount),
            block_number=block,
            block_id=block_id(block),
            required_confirmations=self.required,
        )
        payment, events = handle_payment(self.payments.get(f"{tx_hash(n)}:0"), command)
        self.payments[payment.payment_id] = payment
        self._blocks[payment.payment_id] = block
        self._payment_events(payment.payment_id, list(events))
        return payment.payment_id

    def confirmations(self, payment_id: str, confirmations: int) -> list[DomainEvent]:
        number = self._blocks[payment_id] + confirmations - 1
        payment, events = handle_payment(self.payments[payment_id], head(number, payment_id))
        self.payments[payment_id] = payment
        return self._payment_events(payment_id, list(events))

    def orphan(self, payment_id: str) -> list[DomainEvent]:
        command = OrphanPayment(
            command_id=fresh_id("orphan"),
            payment_id=payment_id,
            block_id=block_id(self._blocks[payment_id]),
            orphaned_at=T0 + timedelta(minutes=3),
        )
        payment, events = handle_payment(self.payments[payment_id], command)
        self.payments[payment_id] = payment
        return self._payment_events(payment_id, list(events))

    def fail(self, payment_id: str) -> list[DomainEvent]:
        command = FailPayment(
            command_id=fresh_id("fail"),
            payment_id=payment_id,
            failed_at=T0 + timedelta(minutes=3),
            reason="transaction reverted",
        )
        payment, events = handle_payment(self.payments[payment_id], command)
        self.payments[payment_id] = payment
        return self._payment_events(payment_id, list(events))

    def expire(self) -> list[DomainEvent]:
        command = ExpireInvoice(
            command_id=fresh_id("expire"), invoice_id=self.invoice_id, expired_at=AFTER_EXPIRY
        )
        self.invoice, events = handle_invoice(self.invoice, command)
        self.events.extend(events)
        return list(events)

    def cancel(self) -> list[DomainEvent]:
        command = CancelInvoice(
            command_id=fresh_id("cancel"),
            invoice_id=self.invoice_id,
            cancelled_at=T0 + timedelta(minutes=1),
            reason="customer left",
        )
        self.invoice, events = handle_invoice(self.invoice, command)
        self.events.extend(events)
        return list(events)
