"""Where the customer's view comes from when Redis has none: the invoice's own table.

Redis holds the live views (app/adapters/redis/live_views.py) but is a cache: flushed or
restarted, it forgets them. The invoice aggregate keeps its whole event history, so the worker
owning the invoice rebuilds the public view by folding those events through the same code the
live agent uses (app/services/live_view.py; without the payments' confirmation counts, which
live in payment events: the next change brings them back). Another worker asks the owner over
``/internal/v1/…``, which only ever reads locally.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web as aioweb

from app.runtime.routing import Routing
from app.services.errors import DependencyUnavailable
from app.services.live_view import view_from_history
from app.services.ports import InvoiceStore, View
from web.errors import ApiError

INTERNAL_PATH = "/internal/v1/invoices/{invoice_id}/public-view"


class ViewFallback:
    def __init__(
        self, invoices: InvoiceStore, routing: Routing, *, table: str, token_contract: str
    ) -> None:
        self._invoices = invoices
        self._routing = routing
        self._table = table
        self._token_contract = token_contract

    def add_routes(self, router: aioweb.UrlDispatcher) -> None:
        router.add_get(INTERNAL_PATH, self.internal_public_view)

    def local_view(self, invoice_id: str) -> View | None:
        invoice = self._invoices.get(invoice_id)
        if invoice is None:
            return None
        return view_from_history(invoice, token_contract=self._token_contract)

    async def __call__(self, invoice_id: str) -> View | None:
        """The view from the worker that owns the invoice; None when nobody can tell."""
        try:
            local = self._routing.is_local(self._table, invoice_id)
        except DependencyUnavailable:
            return None
        if local:
            return self.local_view(invoice_id)
        path = INTERNAL_PATH.format(invoice_id=invoice_id)
        view: Any = await self._routing.read_from_owner(self._table, invoice_id, path)
        return dict(view) if isinstance(view, dict) else None

    async def internal_public_view(self, request: aioweb.Request) -> aioweb.Response:
        invoice_id = request.match_info["invoice_id"]
        view = self.local_view(invoice_id)
        if view is None:
            raise ApiError(
                404, "invoice_not_found", f"no invoice {invoice_id} here", param="invoice_id"
            )
        return aioweb.json_response(view)
