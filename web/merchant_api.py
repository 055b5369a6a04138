"""The merchant API: create, read and cancel invoices; read settlements.

Commands go to the invoice agent, which owns the invoice, and the request waits for its answer
(Faust's ask/reply over Kafka). Reads of one invoice are served from the table on the worker that
owns it (app/runtime/routing.py); settlement reads come from PostgreSQL. Merchants only ever see
their own objects: another merchant's invoice is a 404, exactly like one that does not exist.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web as aioweb

from app.adapters.postgres.idempotency import (
    IdempotencyKeys,
    IdempotentRequest,
    request_fingerprint,
)
from app.adapters.postgres.merchants import Merchant
from app.adapters.redis.replies import ReplyTimeout
from app.adapters.tron.deposit_addresses import DepositAddressAllocator
from app.domain.commands import CancelInvoice, CreateInvoice, InvoiceCommand
from app.domain.errors import restore_error
from app.domain.invoice import Invoice
from app.domain.settlement import Settlement
from app.faust_app import aiohttp_application, resources, settings
from app.runtime.publishing import send_invoice_command
from app.runtime.routing import serve_from_owner
from app.services.errors import CommandTimeout
from tables.invoices import invoices
from tables.settlements import settlements
from web.auth import authenticate
from web.errors import ApiError
from web.presenters import (
    invoice_for_merchant,
    settlement_for_merchant,
    settlement_row_for_merchant,
)
from web.requests import (
    page_limit,
    parse_cancel_request,
    parse_create_invoice,
    read_json_object,
)

IDEMPOTENCY_KEY_MAX = 200


def new_invoice_id() -> str:
    return f"inv_{secrets.token_hex(12)}"


async def ask_invoice_agent(command: InvoiceCommand) -> Invoice:
    """Send a command to the invoice's agent and wait for its answer."""
    replies = resources.replies
    reply_to, answer = replies.new_request()
    try:
        await send_invoice_command(command, reply_to)
        reply = await replies.wait(reply_to, answer, settings.command_timeout)
    except ReplyTimeout:
        raise CommandTimeout(
            "the invoice service did not answer in time; the command may still apply: retry it "
            "(with the same Idempotency-Key when creating)"
        ) from None
    if reply["ok"]:
        return Invoice.from_dict(reply["invoice"])
    if reply["error"] is None:
        raise ApiError(500, "internal_error", "the invoice service failed on this command")
    error = reply["error"]
    raise restore_error(error.get("class", ""), error["message"], error["param"])


# --- POST /api/v1/invoices ---------------------------------------------------------------------


async def create_invoice(request: aioweb.Request) -> aioweb.Response:
    merchant = await authenticate(request)
    body = await read_json_object(request)
    fields = parse_create_invoice(body, settings)
    idempotency_key = _idempotency_key(request)
    now = datetime.now(UTC)
    replayed = False
    if idempotency_key is None:
        command = await _new_create_command(merchant, fields, now, command_id=None)
    else:
        keys = IdempotencyKeys(resources.db)
        fingerprint = request_fingerprint(body)
        held = await keys.find(merchant.merchant_id, idempotency_key)
        if held is None:
            fresh = await _new_create_command(
                merchant, fields, now, command_id=f"idem:{merchant.merchant_id}:{idempotency_key}"
            )
            held = await keys.claim(
                merchant.merchant_id,
                idempotency_key,
                IdempotentRequest(fingerprint, fresh.invoice_id, fresh.model_dump(mode="json")),
            )
            replayed = held.invoice_id != fresh.invoice_id
        else:
            replayed = True
        if held.request_sha256 != fingerprint:
            raise ApiError(
                409,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request body; use a new key "
                "for a new invoice",
                param="Idempotency-Key",
            )
        command = CreateInvoice.model_validate(held.command)
    invoice = await ask_invoice_agent(command)
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return aioweb.json_response(
        invoice_for_merchant(invoice),
        status=200 if replayed else 201,
        headers={**headers, "Location": f"/api/v1/invoices/{invoice.invoice_id}"},
    )


def _idempotency_key(request: aioweb.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX or not key.isprintable():
        raise ApiError(
            400,
            "idempotency_key_invalid",
            f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable characters",
            param="Idempotency-Key",
        )
    return key


async def _new_create_command(
    merchant: Merchant, fields: dict[str, Any], now: datetime, *, command_id: str | None
) -> CreateInvoice:
    invoice_id = new_invoice_id()
    deposit = await DepositAddressAllocator(resources.db, settings.chain.xpub).allocate(invoice_id)
    return CreateInvoice(
        command_id=command_id or f"create:{invoice_id}",
        invoice_id=invoice_id,
        merchant_id=merchant.merchant_id,
        amount=fields["amount"],
        deposit_address=deposit.address,
        fee_percentage=merchant.fee_percentage,
        confirmation_override=merchant.confirmation_override,
        created_at=now,
        expires_at=now + timedelta(seconds=fields["expires_in"]),
        order_id=fields.get("order_id"),
        description=fields.get("description"),
        metadata=fields.get("metadata", {}),
    )


# --- GET /api/v1/invoices/{invoice_id} ---------------------------------------------------------


def _not_found(invoice_id: str) -> ApiError:
    return ApiError(404, "invoice_not_found", f"no invoice {invoice_id}", param="invoice_id")


def _own_invoice(merchant: Merchant, invoice_id: str) -> Invoice:
    stored = invoices.get(invoice_id)
    if stored is None or stored["merchant_id"] != merchant.merchant_id:
        raise _not_found(invoice_id)
    return Invoice.from_dict(stored)


async def get_invoice(request: aioweb.Request) -> aioweb.StreamResponse:
    invoice_id = request.match_info["invoice_id"]
    merchant = await authenticate(request)

    async def local(request: aioweb.Request) -> aioweb.StreamResponse:
        return aioweb.json_response(invoice_for_merchant(_own_invoice(merchant, invoice_id)))

    return await serve_from_owner(request, invoices, invoice_id, local)


async def cancel_invoice(request: aioweb.Request) -> aioweb.StreamResponse:
    invoice_id = request.match_info["invoice_id"]
    merchant = await authenticate(request)

    async def local(request: aioweb.Request) -> aioweb.StreamResponse:
        _own_invoice(merchant, invoice_id)
        reason = parse_cancel_request(await read_json_object(request, allow_empty=True))
        command = CancelInvoice(
            command_id=f"cancel:{invoice_id}",
            invoice_id=invoice_id,
            cancelled_at=datetime.now(UTC),
            reason=reason,
        )
        return aioweb.json_response(invoice_for_merchant(await ask_invoice_agent(command)))

    return await serve_from_owner(request, invoices, invoice_id, local)


# --- settlements -------------------------------------------------------------------------------


async def get_invoice_settlement(request: aioweb.Request) -> aioweb.StreamResponse:
    invoice_id = request.match_info["invoice_id"]
    merchant = await authenticate(request)

    async def local(request: aioweb.Request) -> aioweb.StreamResponse:
        _own_invoice(merchant, invoice_id)
        stored = settlements.get(invoice_id)
        if stored is None:
            raise ApiError(
                404,
                "settlement_not_found",
                f"invoice {invoice_id} has no settlement (it is settled once paid)",
                param="invoice_id",
            )
        return aioweb.json_response(settlement_for_merchant(Settlement.from_dict(stored)))

    return await serve_from_owner(request, settlements, invoice_id, local)


_SETTLEMENT_COLUMNS = (
    "settlement_id, invoice_id, merchant_id, gross_amount, platform_fee_amount,"
    " platform_fee_percentage, net_amount, status, created_at, completed_at"
)


async def get_settlement(request: aioweb.Request) -> aioweb.Response:
    settlement_id = request.match_info["settlement_id"]
    merchant = await authenticate(request)
    async with resources.db.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            f"SELECT {_SETTLEMENT_COLUMNS} FROM settlements"  # noqa: S608 - a constant list
            " WHERE settlement_id = %s AND merchant_id = %s",
            (settlement_id, merchant.merchant_id),
        )
        row = await cur.fetchone()
    if row is None:
        raise ApiError(
            404, "settlement_not_found", f"no settlement {settlement_id}", param="settlement_id"
        )
    return aioweb.json_response(settlement_row_for_merchant(_settlement_row(row)))


async def list_settlements(request: aioweb.Request) -> aioweb.Response:
    merchant = await authenticate(request)
    invoice_id = request.query.get("invoice_id")
    limit = page_limit(request)
    query = f"SELECT {_SETTLEMENT_COLUMNS} FROM settlements WHERE merchant_id = %s"  # noqa: S608
    params: list[Any] = [merchant.merchant_id]
    if invoice_id is not None:
        query += " AND invoice_id = %s"
        params.append(invoice_id)
    query += " ORDER BY created_at DESC, settlement_id DESC LIMIT %s"
    params.append(limit)
    async with resources.db.acquire() as conn, conn.cursor() as cur:
        await cur.execute(query, params)
        rows = await cur.fetchall()
    return aioweb.json_response(
        {"data": [settlement_row_for_merchant(_settlement_row(row)) for row in rows]}
    )


def _settlement_row(row: tuple[Any, ...]) -> dict[str, Any]:
    names = [name.strip() for name in _SETTLEMENT_COLUMNS.split(",")]
    return dict(zip(names, row, strict=True))


def _register_routes(router: aioweb.UrlDispatcher) -> None:
    router.add_post("/api/v1/invoices", create_invoice)
    router.add_get("/api/v1/invoices/{invoice_id}", get_invoice)
    router.add_post("/api/v1/invoices/{invoice_id}/cancel", cancel_invoice)
    router.add_get("/api/v1/invoices/{invoice_id}/settlement", get_invoice_settlement)
    router.add_get("/api/v1/settlements", list_settlements)
    router.add_get("/api/v1/settlements/{settlement_id}", get_settlement)


_register_routes(aiohttp_application().router)
