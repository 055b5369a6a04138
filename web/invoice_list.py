"""``GET /api/v1/invoices``: a merchant's invoices, filtered, newest first, page by page.

Served from the PostgreSQL read model (app/adapters/postgres/projections.py), not from the invoice
tables: a list spans every partition, and no worker holds them all. The read model is eventually
consistent: an invoice appears, and its status changes, once the projection agent has applied its
events — usually well under a second after the invoice changed. GET /api/v1/invoices/{id} is always
current.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final, TypeVar

from aiohttp import web as aioweb
from multidict import MultiMapping

from app.adapters.postgres.projections import InvalidCursor, decode_cursor
from app.domain.access import Scope
from app.domain.fields import IDENTIFIER_PATTERN
from app.domain.statuses import InvoiceStatus, PaymentException, SettlementStatus
from app.services.ports import InvoiceQuery, InvoiceSummaryReads, SettlementQuery
from web.auth import Authenticator
from web.errors import ApiError
from web.presenters import invoice_summary_for_merchant

DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100
MAX_ORDER_ID: Final = 200
PARAMETERS: Final = frozenset(
    {"status", "payment_exception", "order_id", "created_from", "created_to", "limit", "cursor"}
)

SETTLEMENT_PARAMETERS: Final = frozenset(
    {"invoice_id", "status", "created_from", "created_to", "limit", "cursor"}
)
_IDENTIFIER: Final = re.compile(IDENTIFIER_PATTERN)

E = TypeVar("E", InvoiceStatus, PaymentException, SettlementStatus)


def _bad(param: str, message: str, code: str = "parameter_invalid") -> ApiError:
    return ApiError(400, code, message, param=param)


def _single(query: MultiMapping[str], name: str) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise _bad(name, f"{name} is given {len(values)} times; give it once")
    return values[0] if values else None


def _members(query: MultiMapping[str], name: str, kind: type[E]) -> tuple[E, ...]:
    """Comma-separated values of an enum, repeated parameters allowed (status=a,b&status=c)."""
    allowed = ", ".join(member.value for member in kind)
    found: list[E] = []
    for value in query.getall(name, []):
        for item in value.split(","):
            try:
                member = kind(item.strip())
            except ValueError:
                raise _bad(name, f"{name} {item!r} is not one of: {allowed}") from None
            if member not in found:
                found.append(member)
    return tuple(found)


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdecimal()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise _bad("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def _instant(name: str, raw: str | None) -> datetime | None:
    if raw is None:
        return None
    message = (
        f"{name} must be an RFC 3339 time with its offset, e.g. 2024-05-01T00:00:00Z "
        "(write a + offset as %2B in the URL)"
    )
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _bad(name, message) from None
    # RFC 3339 needs the date, the time and the offset; fromisoformat is laxer on the first two.
    if moment.tzinfo is None or "T" not in raw.upper():
        raise _bad(name, message)
    return moment


def _order_id(raw: str | None) -> str | None:
    if raw is not None and not 1 <= len(raw) <= MAX_ORDER_ID:
        raise _bad("order_id", f"order_id must be 1 to {MAX_ORDER_ID} characters")
    return raw


def _cursor(raw: str | None) -> str | None:
    if raw is not None:
        try:
            decode_cursor(raw)  # a bad cursor is a 400 before any query runs
        except InvalidCursor as exc:
            raise _bad("cursor", exc.message, exc.code) from None
    return raw


def _known(query: MultiMapping[str], allowed: frozenset[str]) -> None:
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise _bad(
            unknown[0],
            f"unknown parameter {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}",
            "parameter_unknown",
        )


def _window(created_from: datetime | None, created_to: datetime | None) -> None:
    if created_from is not None and created_to is not None and created_to <= created_from:
        raise _bad("created_to", "created_to must be later than created_from")


def parse_list_query(query: MultiMapping[str]) -> InvoiceQuery:
    """The list request's parameters, or a 400 naming one that is wrong."""
    _known(query, PARAMETERS)
    parsed = InvoiceQuery(
        status=_members(query, "status", InvoiceStatus),
        payment_exception=_members(query, "payment_exception", PaymentException),
        order_id=_order_id(_single(query, "order_id")),
        created_from=_instant("created_from", _single(query, "created_from")),
        created_to=_instant("created_to", _single(query, "created_to")),
        limit=_limit(_single(query, "limit")),
        cursor=_cursor(_single(query, "cursor")),
    )
    _window(parsed.created_from, parsed.created_to)
    return parsed


def parse_settlement_query(query: MultiMapping[str]) -> SettlementQuery:
    """``GET /api/v1/settlements``'s parameters, or a 400 naming one that is wrong."""
    _known(query, SETTLEMENT_PARAMETERS)
    invoice_id = _single(query, "invoice_id")
    if invoice_id is not None and not (
        len(invoice_id) <= MAX_ORDER_ID and _IDENTIFIER.fullmatch(invoice_id)
    ):
        raise _bad("invoice_id", "invoice_id is not an invoice id (letters, digits, _ . : -)")
    parsed = SettlementQuery(
        invoice_id=invoice_id,
        status=_members(query, "status", SettlementStatus),
        created_from=_instant("created_from", _single(query, "created_from")),
        created_to=_instant("created_to", _single(query, "created_to")),
        limit=_limit(_single(query, "limit")),
        cursor=_cursor(_single(query, "cursor")),
    )
    _window(parsed.created_from, parsed.created_to)
    return parsed


class InvoiceListApi:
    def __init__(self, auth: Authenticator, summaries: InvoiceSummaryReads) -> None:
        self._auth = auth
        self._summaries = summaries

    def add_routes(self, router: aioweb.UrlDispatcher) -> None:
        router.add_get("/api/v1/invoices", self.list_invoices)

    async def list_invoices(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.INVOICES_READ)
        query = parse_list_query(request.query)
        page = await self._summaries.list(merchant.merchant_id, query)
        return aioweb.json_response(
            {
                "data": [invoice_summary_for_merchant(row) for row in page.rows],
                "has_more": page.has_more,
                "next_cursor": page.next_cursor,
            }
        )
