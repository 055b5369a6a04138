"""The invoice as the worker owning it has it: how a create is answered while Redis is down.

A request creating an invoice waits for the invoice agent's answer over Redis pub/sub; while this
worker cannot hear it, the request asks for the invoice itself (app/runtime/commands.py says
why that is safe). The owner reads its table partition; another worker asks the owner over
``/internal/v1/…`` (signed, refused to anyone but a worker: web/edge.py), which only ever reads
locally. Nothing here needs Redis.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web as aioweb

from app.domain.invoice import Invoice
from app.runtime.routing import Routing
from app.services.errors import DependencyUnavailable
from app.services.ports import InvoiceStore
from web.errors import ApiError

INTERNAL_PATH = "/internal/v1/invoices/{invoice_id}"


class OwnerInvoices:
    def __init__(self, invoices: InvoiceStore, routing: Routing, *, table: str) -> None:
        self._invoices = invoices
        self._routing = routing
        self._table = table

    def add_routes(self, router: aioweb.UrlDispatcher) -> None:
        router.add_get(INTERNAL_PATH, self.internal_invoice)

    async def __call__(self, invoice_id: str) -> Invoice | None:
        """The invoice from the worker that owns it; None when it has none or cannot answer."""
        try:
            local = self._routing.is_local(self._table, invoice_id)
        except DependencyUnavailable:
            return None
        if local:
            return self._invoices.get(invoice_id)
        path = INTERNAL_PATH.format(invoice_id=invoice_id)
        found: Any = await self._routing.read_from_owner(self._table, invoice_id, path)
        return Invoice.from_dict(found) if isinstance(found, dict) else None

    async def internal_invoice(self, request: aioweb.Request) -> aioweb.Response:
        invoice_id = request.match_info["invoice_id"]
        invoice = self._invoices.get(invoice_id)
        if invoice is None:
            raise ApiError(
                404, "invoice_not_found", f"no invoice {invoice_id} here", param="invoice_id"
            )
        return aioweb.json_response(invoice.to_dict())
