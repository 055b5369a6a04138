"""Resolve an underpaid invoice: the merchant's decision about money that did not cover it.

docs/merchant-api.md, "Resolve an underpaid invoice". ``accept`` (paid for what was received,
settled on that), ``refund`` (everything received goes back to who sent it), or ``extend`` (open
again for the rest until a new deadline). The invoice agent decides (app/domain/invoice.py,
``ResolveInvoice``); this use case prepares the command on the worker that owns the invoice: the
refund's id (one per invoice: derived from it) and its address (the sender, when one address
paid). The refund itself is created from the ``InvoiceResolved`` event
(``MoneyOutRequests.refund_received``, agents/resolutions.py), so it happens even if this worker
stops right after the invoice agent answered.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Literal

from app.domain.commands import ResolveInvoice
from app.domain.errors import RefundNotAllowed
from app.domain.invoice import Invoice
from app.services.merchant_invoices import MerchantInvoices
from app.services.money_out import MoneyOutRequests
from app.services.ports import InvoiceCommandGateway, MoneyOutStore

Action = Literal["accept", "refund", "extend"]


def resolution_refund_id(invoice_id: str) -> str:
    """The one refund an invoice's resolution may create (so a retry finds it)."""
    return "rf_" + hashlib.sha256(f"resolution:{invoice_id}".encode()).hexdigest()[:24]


class Resolutions:
    def __init__(
        self,
        invoices: MerchantInvoices,
        commands: InvoiceCommandGateway,
        money_out: MoneyOutStore,
        requests: MoneyOutRequests,
    ) -> None:
        self._invoices = invoices
        self._commands = commands
        self._money_out = money_out
        self._requests = requests

    async def resolve(
        self,
        merchant_id: str,
        invoice_id: str,
        *,
        action: Action,
        expires_in: int | None,
        address: str | None,
        idempotency_key: str | None,
        now: datetime,
    ) -> Invoice:
        self._invoices.get(merchant_id, invoice_id)  # 404 for another merchant's
        command_id = (
            f"resolve:{invoice_id}:{idempotency_key}"
            if idempotency_key
            else f"resolve:{invoice_id}:{uuid.uuid4().hex}"
        )
        refund_id = refund_address = None
        if action == "accept":
            context = await self._money_out.refund_context(merchant_id, invoice_id)
            if context.refunded_received:
                # Settling it now would credit the merchant with money already sent back.
                raise RefundNotAllowed(
                    f"part of what invoice {invoice_id} received was refunded: it can no longer"
                    " be accepted; refund the rest instead",
                    param="action",
                )
        if action == "refund":
            refund_id = resolution_refund_id(invoice_id)
            if address is None:
                context = await self._money_out.refund_context(merchant_id, invoice_id)
                address = context.sole_sender(invoice_id)
            await self._requests.check_destination(address)
            refund_address = address
        command = ResolveInvoice(
            command_id=command_id,
            invoice_id=invoice_id,
            action=action,
            resolved_at=now,
            expires_at=now + timedelta(seconds=expires_in) if expires_in is not None else None,
            refund_id=refund_id,
            refund_address=refund_address,
        )
        return await self._commands.ask(command)
