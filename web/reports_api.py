"""The merchant's reports: ``GET /api/v1/reports/summary``, ``GET /api/v1/reports/daily`` and
``GET /api/v1/balance`` (scope ``reports:read``); the platform's revenue for its admins,
``GET /api/v1/admin/reports/revenue``.

Served from the read models (docs/reports.md), so they trail the invoices by the projection,
usually well under a second. Amounts are USDT decimal strings, like everywhere in the API.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from aiohttp import web as aioweb
from multidict import MultiMapping

from app.domain.access import Scope
from app.domain.money import format_usdt
from app.services.admin import require_admin
from app.services.ports import ReportReads
from web.auth import Authenticator
from web.errors import ApiError
from web.presenters import format_time

MAX_DAYS: Final = 366
DEFAULT_DAYS: Final = 30
STATUSES: Final = ("pending", "confirming", "paid", "expired", "cancelled")
EXCEPTIONS: Final = ("underpaid", "overpaid", "paid_late")
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _bad(param: str, message: str, code: str = "parameter_invalid") -> ApiError:
    return ApiError(400, code, message, param=param)


def _no_parameters(query: MultiMapping[str], allowed: frozenset[str] = frozenset()) -> None:
    unknown = sorted(set(query) - allowed)
    if unknown:
        names = ", ".join(sorted(allowed)) or "none"
        raise _bad(
            unknown[0], f"unknown parameter {unknown[0]!r}; allowed: {names}", "parameter_unknown"
        )


def _day(query: MultiMapping[str], name: str) -> date | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise _bad(name, f"{name} is given {len(values)} times; give it once")
    if not values:
        return None
    raw = values[0]
    message = f"{name} must be a date as YYYY-MM-DD (a UTC day), e.g. 2026-01-31"
    if not _DATE.fullmatch(raw):
        raise _bad(name, message)
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise _bad(name, message) from None


def day_range(query: MultiMapping[str], today: date) -> tuple[date, date]:
    """``from`` and ``to`` (both included): the last 30 days by default, at most 366."""
    _no_parameters(query, frozenset({"from", "to"}))
    last = _day(query, "to")
    first = _day(query, "from")
    if last is None:
        last = today if first is None else min(today, first + timedelta(days=DEFAULT_DAYS - 1))
    if first is None:
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        raise _bad("to", "to must be the same day as from or later")
    if (last - first).days + 1 > MAX_DAYS:
        raise _bad("to", f"a report covers at most {MAX_DAYS} days; ask for several")
    return first, last


def summary_json(row: Mapping[str, Any] | None) -> dict[str, Any]:
    """``merchant_dashboard``'s row for the API; a merchant with no event yet has zeros."""
    row = row or {}

    def count(name: str) -> int:
        return int(row.get(name) or 0)

    created, paid = count("invoices_created"), count("invoices_paid")
    timed = count("paid_with_time")
    return {
        "object": "report_summary",
        "currency": "USDT",
        "gross_volume": format_usdt(count("gross_volume")),
        "fees": format_usdt(count("fees")),
        "net_volume": format_usdt(count("net_volume")),
        "balance": format_usdt(count("balance")),
        "settlements": count("settlements"),
        "invoices_created": created,
        "invoices_paid": paid,
        "invoices_by_status": {status: count(f"invoices_{status}") for status in STATUSES},
        "invoices_by_exception": {kind: count(f"invoices_{kind}") for kind in EXCEPTIONS},
        "conversion_rate": round(paid / created, 4) if created else None,
        "average_seconds_to_paid": (
            round(count("ms_to_paid_total") / timed / 1000, 3) if timed else None
        ),
        "updated_at": format_time(row.get("updated_at")),
    }


def daily_json(rows: list[dict[str, Any]], first: date, last: date) -> dict[str, Any]:
    """One entry per day from ``first`` to ``last``, days without activity as zeros."""
    by_day = {row["day"]: row for row in rows}
    data = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        row = by_day.get(day, {})
        data.append(
            {
                "date": day.isoformat(),
                "gross_volume": format_usdt(int(row.get("gross_volume", 0))),
                "fees": format_usdt(int(row.get("fees", 0))),
                "net_volume": format_usdt(int(row.get("net_volume", 0))),
                "settlements": int(row.get("settlements", 0)),
                "invoices_created": int(row.get("invoices_created", 0)),
                "invoices_paid": int(row.get("invoices_paid", 0)),
                "invoices_expired": int(row.get("invoices_expired", 0)),
            }
        )
    return {
        "object": "list",
        "from": first.isoformat(),
        "to": last.isoformat(),
        "currency": "USDT",
        "data": data,
    }


def _revenue_json(row: Mapping[str, Any], **extra: str) -> dict[str, Any]:
    return {
        **extra,
        "settlements": int(row.get("settlements", 0)),
        "gross_volume": format_usdt(int(row.get("gross_volume", 0))),
        "fees": format_usdt(int(row.get("fees", 0))),
        "net_volume": format_usdt(int(row.get("net_volume", 0))),
    }


class ReportsApi:
    def __init__(
        self,
        auth: Authenticator,
        reports: ReportReads,
        *,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        self._auth = auth
        self._reports = reports
        self._today = today

    def add_routes(self, router: aioweb.UrlDispatcher) -> None:
        router.add_get("/api/v1/reports/summary", self.summary)
        router.add_get("/api/v1/reports/daily", self.daily)
        router.add_get("/api/v1/balance", self.balance)
        router.add_get("/api/v1/admin/reports/revenue", self.platform_revenue)

    async def platform_revenue(self, request: aioweb.Request) -> aioweb.Response:
        """The platform's fees per UTC day, for its admins."""
        require_admin(await self._auth.principal(request))
        first, last = day_range(request.query, self._today())
        rows = {row["day"]: row for row in await self._reports.platform_revenue(first, last)}
        data = []
        totals = dict.fromkeys(("settlements", "gross_volume", "fees", "net_volume"), 0)
        for offset in range((last - first).days + 1):
            day = first + timedelta(days=offset)
            row = rows.get(day, {})
            for name in totals:
                totals[name] += int(row.get(name, 0))
            data.append(_revenue_json(row, date=day.isoformat()))
        return aioweb.json_response(
            {
                "object": "list",
                "from": first.isoformat(),
                "to": last.isoformat(),
                "currency": "USDT",
                "total": _revenue_json(totals),
                "data": data,
            }
        )

    async def summary(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.REPORTS_READ)
        _no_parameters(request.query)
        row = await self._reports.summary(merchant.merchant_id)
        return aioweb.json_response(summary_json(row))

    async def daily(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.REPORTS_READ)
        first, last = day_range(request.query, self._today())
        rows = await self._reports.daily(merchant.merchant_id, first, last)
        return aioweb.json_response(daily_json(rows, first, last))

    async def balance(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.REPORTS_READ)
        _no_parameters(request.query)
        amounts = await self._reports.balance(merchant.merchant_id)
        return aioweb.json_response(
            {
                "object": "balance",
                "currency": "USDT",
                "available": format_usdt(amounts["available"]),
                "in_flight": format_usdt(amounts["incoming"] + amounts["outgoing"]),
                "incoming": format_usdt(amounts["incoming"]),
                "outgoing": format_usdt(amounts["outgoing"]),
            }
        )
