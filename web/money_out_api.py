"""Refunds and payouts over HTTP (docs/money-out.md, docs/merchant-api.md).

- ``POST /api/v1/invoices/{id}/refunds`` (``refunds:write``, ``Idempotency-Key`` required):
  ``amount`` (default: what was overpaid), ``address`` (default: who paid);
  ``GET /api/v1/refunds/{id}`` and ``GET /api/v1/invoices/{id}/refunds`` (``invoices:read``).
- ``POST /api/v1/payouts`` (``payouts:write``, ``Idempotency-Key`` required): ``amount``,
  ``address``; ``GET /api/v1/payouts`` (cursor) and ``GET /api/v1/payouts/{id}``
  (``payouts:read``); ``POST /api/v1/payouts/{id}/cancel`` while not yet signed.
- ``GET``/``PUT``/``DELETE /api/v1/payout-schedule`` (``payouts:read`` / ``payouts:write``): a
  standing order to pay out the balance daily or weekly to a saved address.
- ``POST /api/v1/admin/payouts/{id}/approve`` and ``GET /api/v1/admin/payouts?status=requested``
  (the platform admin).

Every request is recorded with its debit before the answer (201); what follows happens on the
leader (app/services/money_out_driver.py) and is told by events and webhooks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web as aioweb

from app.adapters.postgres.projections import InvalidCursor, decode_cursor, encode_cursor
from app.domain.access import Scope
from app.domain.money import format_usdt, parse_usdt
from app.domain.money_out import OutgoingTransfer, TransferKind
from app.domain.payout_schedule import WEEKDAYS, InvalidSchedule, PayoutSchedule
from app.services.admin import require_admin
from app.services.create_invoice import request_fingerprint
from app.services.money_out import MoneyOutRequests
from app.services.payout_schedule import PayoutSchedules
from app.services.ports import MoneyOutStore
from web.auth import Authenticator
from web.errors import ApiError
from web.input import read_json_object
from web.requests import page_limit, required_idempotency_key, tron_address


def _bad(message: str, param: str, code: str = "parameter_invalid") -> ApiError:
    return ApiError(400, code, message, param=param)


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _bad(
            f"unknown parameter {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}",
            unknown[0],
            "parameter_unknown",
        )


def _amount(value: Any) -> int:
    return parse_usdt(value, field="amount")


def transfer_view(transfer: OutgoingTransfer) -> dict[str, Any]:
    """A refund or payout as its merchant sees it (every amount a decimal string)."""
    attempt = transfer.attempt
    receipt = transfer.receipt
    view: dict[str, Any] = {
        "id": transfer.transfer_id,
        "object": transfer.kind.value,
        "amount": format_usdt(transfer.amount),
        "currency": "USDT",
        "address": transfer.to_address,
        "status": transfer.status,
        "failure_reason": transfer.failure_reason,
        "tx_hash": attempt.txid if attempt and transfer.broadcast_accepted else None,
        "block_number": receipt.block_number if receipt else None,
        "network_fee": {
            "payer": transfer.network_fee_payer,
            "charged": format_usdt(transfer.network_fee_charged),
            "burned_trx": format_usdt(receipt.fee_sun) if receipt else None,
        },
        "created_at": transfer.created_at.isoformat(),
        "broadcast_at": transfer.broadcast_at.isoformat() if transfer.broadcast_at else None,
        "finished_at": transfer.finished_at.isoformat() if transfer.finished_at else None,
    }
    if transfer.kind is TransferKind.REFUND:
        view["invoice_id"] = transfer.invoice_id
    else:
        view["approval"] = transfer.approval
        view["approved_at"] = transfer.approved_at.isoformat() if transfer.approved_at else None
    return view


class MoneyOutApi:
    def __init__(
        self,
        auth: Authenticator,
        requests: MoneyOutRequests,
        store: MoneyOutStore,
        schedules: PayoutSchedules,
    ) -> None:
        self._auth = auth
        self._requests = requests
        self._store = store
        self._schedules = schedules

    def add_routes(self, router: aioweb.UrlDispatcher) -> None:
        router.add_post("/api/v1/invoices/{invoice_id}/refunds", self.create_refund)
        router.add_get("/api/v1/invoices/{invoice_id}/refunds", self.invoice_refunds)
        router.add_get("/api/v1/refunds/{refund_id}", self.get_refund)
        router.add_post("/api/v1/payouts", self.create_payout)
        router.add_get("/api/v1/payouts", self.list_payouts)
        router.add_get("/api/v1/payouts/{payout_id}", self.get_payout)
        router.add_post("/api/v1/payouts/{payout_id}/cancel", self.cancel_payout)
        router.add_get("/api/v1/payout-schedule", self.get_schedule)
        router.add_put("/api/v1/payout-schedule", self.put_schedule)
        router.add_delete("/api/v1/payout-schedule", self.delete_schedule)
        router.add_get("/api/v1/admin/payouts", self.admin_payouts)
        router.add_post("/api/v1/admin/payouts/{payout_id}/approve", self.admin_approve)

    # --- refunds ------------------------------------------------------------------------------

    async def create_refund(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.REFUNDS_WRITE)
        key = required_idempotency_key(request)
        body = await read_json_object(request, allow_empty=True)
        _only(body, {"amount", "address"})
        amount = None if body.get("amount") is None else _amount(body["amount"])
        address = None if body.get("address") is None else tron_address(body["address"])
        refund, replayed = await self._requests.request_refund(
            merchant.merchant_id,
            _path_id(request, "invoice_id"),
            amount=amount,
            address=address,
            idempotency_key=key,
            fingerprint=request_fingerprint(body),
            now=datetime.now(UTC),
        )
        return _created(refund, replayed, f"/api/v1/refunds/{refund.transfer_id}")

    async def get_refund(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.INVOICES_READ)
        refund = await self._requests.refund(merchant.merchant_id, _path_id(request, "refund_id"))
        return aioweb.json_response(transfer_view(refund))

    async def invoice_refunds(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.INVOICES_READ)
        refunds = await self._store.list(
            merchant.merchant_id,
            TransferKind.REFUND,
            limit=100,
            invoice_id=_path_id(request, "invoice_id"),
        )
        return aioweb.json_response({"data": [transfer_view(item) for item in refunds]})

    # --- payouts ------------------------------------------------------------------------------

    async def create_payout(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.PAYOUTS_WRITE)
        key = required_idempotency_key(request)
        body = await read_json_object(request)
        _only(body, {"amount", "address"})
        if "amount" not in body or "address" not in body:
            missing = "amount" if "amount" not in body else "address"
            raise _bad(f"{missing} is required", missing, "parameter_missing")
        payout, replayed = await self._requests.request_payout(
            merchant.merchant_id,
            amount=_amount(body["amount"]),
            address=tron_address(body["address"]),
            threshold=await self._store.payout_threshold(merchant.merchant_id),
            idempotency_key=key,
            fingerprint=request_fingerprint(body),
            now=datetime.now(UTC),
        )
        return _created(payout, replayed, f"/api/v1/payouts/{payout.transfer_id}")

    async def get_payout(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.PAYOUTS_READ)
        payout = await self._requests.payout(merchant.merchant_id, _path_id(request, "payout_id"))
        return aioweb.json_response(transfer_view(payout))

    async def list_payouts(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.PAYOUTS_READ)
        _known_query(request, {"limit", "cursor"})
        limit = page_limit(request)
        before = _cursor(request.query.get("cursor"))
        rows = await self._store.list(
            merchant.merchant_id, TransferKind.PAYOUT, limit=limit + 1, before=before
        )
        return _page(rows, limit)

    async def cancel_payout(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.PAYOUTS_WRITE)
        payout = await self._requests.cancel_payout(
            merchant.merchant_id, _path_id(request, "payout_id"), now=datetime.now(UTC)
        )
        return aioweb.json_response(transfer_view(payout))

    # --- scheduled payouts ----------------------------------------------------------------------

    async def get_schedule(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.PAYOUTS_READ)
        return aioweb.json_response(schedule_view(await self._schedules.get(merchant.merchant_id)))

    async def put_schedule(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.PAYOUTS_WRITE)
        body = await read_json_object(request)
        schedule = await self._schedules.put(parse_schedule(merchant.merchant_id, body))
        return aioweb.json_response(schedule_view(schedule))

    async def delete_schedule(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.PAYOUTS_WRITE)
        await self._schedules.delete(merchant.merchant_id)
        return aioweb.json_response({"object": "payout_schedule", "deleted": True})

    # --- the platform admin -------------------------------------------------------------------

    async def admin_payouts(self, request: aioweb.Request) -> aioweb.Response:
        require_admin(await self._auth.principal(request))
        _known_query(request, {"limit", "status"})
        if request.query.get("status", "requested") != "requested":
            raise _bad("status may only be 'requested' (payouts waiting for approval)", "status")
        waiting = await self._store.waiting_for_approval(page_limit(request))
        view = [transfer_view(item) | {"merchant_id": item.merchant_id} for item in waiting]
        return aioweb.json_response({"data": view})

    async def admin_approve(self, request: aioweb.Request) -> aioweb.Response:
        principal = await self._auth.principal(request)
        require_admin(principal)
        payout = await self._requests.approve_payout(
            _path_id(request, "payout_id"), admin=principal.actor_id, now=datetime.now(UTC)
        )
        return aioweb.json_response(transfer_view(payout) | {"merchant_id": payout.merchant_id})


def parse_schedule(merchant_id: str, body: dict[str, Any]) -> PayoutSchedule:
    """``{"frequency": "daily" | "weekly", "weekday": "friday", "hour": 9, "address": "T…",
    "minimum_amount": "50", "keep_amount": "100"}`` (weekday only, and required, for weekly)."""
    _only(body, {"frequency", "weekday", "hour", "address", "minimum_amount", "keep_amount"})
    for required in ("frequency", "address"):
        if required not in body:
            raise _bad(f"{required} is required", required, "parameter_missing")
    weekday = body.get("weekday")
    if weekday is not None and weekday not in WEEKDAYS:
        raise _bad(f"weekday must be one of {', '.join(WEEKDAYS)}", "weekday")
    hour = body.get("hour", 0)
    if not isinstance(hour, int) or isinstance(hour, bool):
        raise _bad("hour must be a whole number from 0 to 23 (UTC)", "hour")
    minimum = body.get("minimum_amount")
    keep = body.get("keep_amount")
    try:
        return PayoutSchedule(
            merchant_id=merchant_id,
            frequency=body["frequency"],
            address=tron_address(body["address"]),
            hour=hour,
            weekday=None if weekday is None else WEEKDAYS.index(weekday),
            minimum_amount=1 if minimum is None else parse_usdt(minimum, field="minimum_amount"),
            keep_amount=(
                0 if keep is None else parse_usdt(keep, field="keep_amount", allow_zero=True)
            ),
        )
    except InvalidSchedule as exc:
        raise _bad(exc.message, exc.param or "frequency") from None


def schedule_view(schedule: PayoutSchedule) -> dict[str, Any]:
    return {
        "object": "payout_schedule",
        "frequency": schedule.frequency,
        "weekday": None if schedule.weekday is None else WEEKDAYS[schedule.weekday],
        "hour": schedule.hour,
        "address": schedule.address,
        "minimum_amount": format_usdt(schedule.minimum_amount),
        "keep_amount": format_usdt(schedule.keep_amount),
        "currency": "USDT",
    }


def _path_id(request: aioweb.Request, name: str) -> str:
    value = request.match_info[name]
    if not 0 < len(value) <= 128 or not value.isascii() or not value.isprintable():
        raise _bad(f"{name} is not an id", name)
    return value


def _known_query(request: aioweb.Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query) - allowed)
    if unknown:
        raise _bad(
            f"unknown query parameter {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}",
            unknown[0],
            "parameter_unknown",
        )


def _cursor(raw: str | None) -> tuple[datetime, str] | None:
    if raw is None:
        return None
    if len(raw) > 400:
        raise _bad("cursor is not a cursor this API gave", "cursor", "cursor_invalid")
    try:
        return decode_cursor(raw)
    except InvalidCursor as exc:
        raise _bad(exc.message, "cursor", exc.code) from None


def _page(rows: list[OutgoingTransfer], limit: int) -> aioweb.Response:
    page = rows[:limit]
    has_more = len(rows) > limit
    cursor = encode_cursor(page[-1].created_at, page[-1].transfer_id) if has_more else None
    return aioweb.json_response(
        {
            "data": [transfer_view(item) for item in page],
            "has_more": has_more,
            "next_cursor": cursor,
        }
    )


def _created(transfer: OutgoingTransfer, replayed: bool, location: str) -> aioweb.Response:
    headers = {"Location": location}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return aioweb.json_response(
        transfer_view(transfer), status=200 if replayed else 201, headers=headers
    )
