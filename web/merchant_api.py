"""The merchant API: create, read and cancel invoices; read settlements.

Creating goes through app/services/create_invoice.py (idempotent with ``Idempotency-Key``) and
waits for the invoice agent's answer. Reads of one invoice, and its cancellation, are served on
the worker that owns it (app/runtime/routing.py) from its tables; settlements from the ledger in
PostgreSQL. Merchants only ever see their own objects: another merchant's invoice is a 404,
exactly like one that does not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web as aioweb

from app.domain.access import Scope
from app.domain.errors import SettlementNotFound
from app.runtime.routing import Routing
from app.services.create_invoice import InvoiceCreation, request_fingerprint
from app.services.merchant_invoices import MerchantInvoices
from app.services.ports import SettlementReads
from app.services.resolutions import Resolutions, resolution_refund_id
from app.settings import Settings
from web.auth import Authenticator
from web.input import read_json_object
from web.invoice_list import parse_settlement_query
from web.presenters import (
    invoice_for_merchant,
    settlement_for_merchant,
    settlement_row_for_merchant,
)
from web.requests import (
    idempotency_key,
    parse_cancel_request,
    parse_create_invoice,
    parse_resolve_request,
)

# Documented in docs/merchant-api.md; with the merchant id it makes the command id (200 at most).

Response = aioweb.StreamResponse
# Answers a request about one invoice of one merchant, on the worker that owns it.
Owned = Callable[[aioweb.Request, str, str], Awaitable[Response]]


class MerchantApi:
    def __init__(
        self,
        auth: Authenticator,
        creation: InvoiceCreation,
        invoices: MerchantInvoices,
        resolutions: Resolutions,
        settlements: SettlementReads,
        routing: Routing,
        *,
        settings: Settings,
        invoice_table: str,
        settlement_table: str,
    ) -> None:
        self._auth = auth
        self._creation = creation
        self._invoices = invoices
        self._resolutions = resolutions
        self._settlements = settlements
        self._routing = routing
        self._settings = settings
        self._invoice_table = invoice_table
        self._settlement_table = settlement_table

    def add_routes(self, router: aioweb.UrlDispatcher) -> None:
        router.add_post("/api/v1/invoices", self.create_invoice)
        router.add_get("/api/v1/invoices/{invoice_id}", self.get_invoice)
        router.add_post("/api/v1/invoices/{invoice_id}/cancel", self.cancel_invoice)
        router.add_post("/api/v1/invoices/{invoice_id}/resolve", self.resolve_invoice)
        router.add_get("/api/v1/invoices/{invoice_id}/settlement", self.get_invoice_settlement)
        router.add_get("/api/v1/settlements", self.list_settlements)
        router.add_get("/api/v1/settlements/{settlement_id}", self.get_settlement)

    async def create_invoice(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.INVOICES_WRITE)
        body = await read_json_object(request)
        fields = parse_create_invoice(body, self._settings)
        invoice, replayed = await self._creation.create(
            merchant,
            fields,
            now=datetime.now(UTC),
            idempotency_key=idempotency_key(request),
            fingerprint=request_fingerprint(body),
        )
        headers = {"Location": f"/api/v1/invoices/{invoice.invoice_id}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return aioweb.json_response(
            invoice_for_merchant(invoice), status=200 if replayed else 201, headers=headers
        )

    async def get_invoice(self, request: aioweb.Request) -> aioweb.StreamResponse:
        return await self._on_owner(
            request, Scope.INVOICES_READ, self._invoice_table, self._invoice
        )

    async def cancel_invoice(self, request: aioweb.Request) -> aioweb.StreamResponse:
        return await self._on_owner(
            request, Scope.INVOICES_WRITE, self._invoice_table, self._cancel
        )

    async def resolve_invoice(self, request: aioweb.Request) -> aioweb.StreamResponse:
        return await self._on_owner(
            request, Scope.INVOICES_WRITE, self._invoice_table, self._resolve
        )

    async def get_invoice_settlement(self, request: aioweb.Request) -> aioweb.StreamResponse:
        return await self._on_owner(
            request, Scope.SETTLEMENTS_READ, self._settlement_table, self._settlement
        )

    async def _on_owner(
        self, request: aioweb.Request, scope: Scope, table: str, answer: Owned
    ) -> Response:
        """Authenticate here, answer on the worker owning the invoice's partition of ``table``."""
        invoice_id = request.match_info["invoice_id"]
        merchant = await self._auth.merchant(request, scope)

        async def local(request: aioweb.Request) -> Response:
            return await answer(request, merchant.merchant_id, invoice_id)

        return await self._routing.serve(request, table, invoice_id, local)

    async def _invoice(self, _: aioweb.Request, merchant_id: str, invoice_id: str) -> Response:
        invoice = self._invoices.get(merchant_id, invoice_id)
        return aioweb.json_response(invoice_for_merchant(invoice))

    async def _cancel(self, request: aioweb.Request, merchant_id: str, invoice_id: str) -> Response:
        self._invoices.get(merchant_id, invoice_id)  # 404 before the body is read
        reason = parse_cancel_request(await read_json_object(request, allow_empty=True))
        invoice = await self._invoices.cancel(
            merchant_id, invoice_id, reason=reason, now=datetime.now(UTC)
        )
        return aioweb.json_response(invoice_for_merchant(invoice))

    async def _resolve(
        self, request: aioweb.Request, merchant_id: str, invoice_id: str
    ) -> Response:
        self._invoices.get(merchant_id, invoice_id)  # 404 before the body is read
        action, expires_in, address = parse_resolve_request(
            await read_json_object(request), self._settings
        )
        if action == "refund":
            # Returning money needs the refund scope as well (a key for invoices only may not).
            await self._auth.merchant(request, Scope.REFUNDS_WRITE)
        invoice = await self._resolutions.resolve(
            merchant_id,
            invoice_id,
            action=action,
            expires_in=expires_in,
            address=address,
            idempotency_key=idempotency_key(request),
            now=datetime.now(UTC),
        )
        body = invoice_for_merchant(invoice)
        if action == "refund":
            body["refund_id"] = resolution_refund_id(invoice_id)
        return aioweb.json_response(body)

    async def _settlement(self, _: aioweb.Request, merchant_id: str, invoice_id: str) -> Response:
        settlement = self._invoices.settlement(merchant_id, invoice_id)
        return aioweb.json_response(settlement_for_merchant(settlement))

    async def get_settlement(self, request: aioweb.Request) -> aioweb.Response:
        settlement_id = request.match_info["settlement_id"]
        merchant = await self._auth.merchant(request, Scope.SETTLEMENTS_READ)
        row = await self._settlements.get(merchant.merchant_id, settlement_id)
        if row is None:
            raise SettlementNotFound(f"no settlement {settlement_id}", param="settlement_id")
        return aioweb.json_response(settlement_row_for_merchant(row))

    async def list_settlements(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.SETTLEMENTS_READ)
        page = await self._settlements.list(
            merchant.merchant_id, parse_settlement_query(request.query)
        )
        return aioweb.json_response(
            {
                "data": [settlement_row_for_merchant(row) for row in page.rows],
                "has_more": page.has_more,
                "next_cursor": page.next_cursor,
            }
        )
