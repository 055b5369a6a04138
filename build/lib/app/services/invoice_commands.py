"""Apply an invoice command: the invoice agent's use case.

The invoice agent is the one writer of invoices. A command (from the HTTP API, the payment agent
or the expiry timer) is decided by the domain (app/domain/invoice.py), the invoice stored, its
events published, and — for a new invoice — its deposit address registered with the payment agent.

Idempotent by construction: a redelivered command finds its events in the invoice's history and
re-publishes those same events (same ids) instead of deciding again; the registration of the
address is sent again too, which the payment agent recognises.
"""

from __future__ import annotations

from datetime import timedelta

from app.domain.commands import CreateInvoice, InvoiceCommand
from app.domain.deposit import DepositRegistration
from app.domain.events import InvoiceCreated, InvoiceEvent
from app.domain.invoice import Invoice, handle_invoice
from app.services.ports import DepositRegistrar, EventPublisher, ExpiryIndex, InvoiceStore


class InvoiceCommands:
    def __init__(
        self,
        invoices: InvoiceStore,
        expiries: ExpiryIndex,
        events: EventPublisher,
        deposits: DepositRegistrar,
        *,
        late_payment_window: timedelta,
    ) -> None:
        self._invoices = invoices
        self._expiries = expiries
        self._events = events
        self._deposits = deposits
        self._late_payment_window = late_payment_window

    async def apply(self, command: InvoiceCommand) -> Invoice:
        """Decide, store, publish: the order that makes a retry harmless."""
        current = self._invoices.get(command.aggregate_id)
        invoice, events = handle_invoice(current, command)
        if invoice is not current:
            self._invoices.put(invoice)
        await self._events.publish_events(events)
        if isinstance(command, CreateInvoice):
            await self._register_deposit_address(events)
        self._expiries.track(invoice)
        return invoice

    async def _register_deposit_address(self, events: list[InvoiceEvent]) -> None:
        """Tell the payment agent which invoice the new deposit address belongs to."""
        for event in events:
            if isinstance(event, InvoiceCreated):
                data = event.data
                registration = DepositRegistration(
                    deposit_address=data.deposit_address,
                    invoice_id=event.aggregate_id,
                    merchant_id=event.merchant_id,
                    amount=data.amount,
                    required_confirmations=data.required_confirmations,
                    expires_at=data.expires_at,
                    monitor_until=data.expires_at + self._late_payment_window,
                )
                await self._deposits.register_deposit(registration)
