"""A merchant's own invoices, one at a time: read one, cancel one, read its settlement.

Served from the tables on the worker that owns the invoice (the views route the request there).
A merchant only ever sees their own: another merchant's invoice is "not found", exactly like one
that does not exist.
"""

from __future__ import annotations

from datetime import datetime

from app.domain.commands import CancelInvoice
from app.domain.errors import InvoiceNotFound, SettlementNotFound
from app.domain.invoice import Invoice
from app.domain.settlement import Settlement
from app.services.ports import InvoiceCommandGateway, InvoiceStore, SettlementStore


class MerchantInvoices:
    def __init__(
        self,
        invoices: InvoiceStore,
        settlements: SettlementStore,
        commands: InvoiceCommandGateway,
    ) -> None:
        self._invoices = invoices
        self._settlements = settlements
        self._commands = commands

    def get(self, merchant_id: str, invoice_id: str) -> Invoice:
        invoice = self._invoices.get(invoice_id)
        if invoice is None or invoice.merchant_id != merchant_id:
            raise InvoiceNotFound(f"no invoice {invoice_id}", param="invoice_id")
        return invoice

    async def cancel(
        self, merchant_id: str, invoice_id: str, *, reason: str | None, now: datetime
    ) -> Invoice:
        """Cancel a pending invoice; cancelling again answers the cancelled invoice."""
        self.get(merchant_id, invoice_id)
        command = CancelInvoice(
            command_id=f"cancel:{invoice_id}",
            invoice_id=invoice_id,
            cancelled_at=now,
            reason=reason,
        )
        return await self._commands.ask(command)

    def settlement(self, merchant_id: str, invoice_id: str) -> Settlement:
        self.get(merchant_id, invoice_id)
        settlement = self._settlements.get(invoice_id)
        if settlement is None:
            raise SettlementNotFound(
                f"invoice {invoice_id} has no settlement (it is settled once paid)",
                param="invoice_id",
            )
        return settlement
