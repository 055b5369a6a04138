"""CSV exports for accounting: ``GET /api/v1/exports/settlements.csv`` and
``GET /api/v1/exports/invoices.csv`` (scope ``reports:read``), for a range of UTC days.

RFC 4180: a header row, CRLF line ends, fields quoted when they hold a comma, a quote or a line
break, UTF-8. Amounts are USDT decimal strings ("9.99"), times RFC 3339 in UTC, lists (tx hashes,
block numbers) joined by spaces. A cell that a spreadsheet would run as a formula (it begins with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return: an order id or a description the merchant's
own customers may have typed) is prefixed with ``'``, as OWASP recommends, so it shows as text.

The file is streamed: a page of rows is read from PostgreSQL and written to the client before
the next is read, whatever the range. Should PostgreSQL fail midway, the connection is closed
before the end of the chunked body, so the client sees a broken download, never a short file
that looks complete.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

from aiohttp import web as aioweb

from app.domain.access import Scope
from app.domain.fees import format_fee_percentage
from app.domain.money import format_usdt
from app.services.ports import ExportReads
from web.auth import Authenticator
from web.presenters import format_time
from web.reports_api import day_range

_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")

SETTLEMENTS_HEADER: Final = (
    "settlement_id",
    "invoice_id",
    "order_id",
    "gross_amount",
    "platform_fee_amount",
    "platform_fee_percentage",
    "net_amount",
    "currency",
    "status",
    "tx_hashes",
    "block_numbers",
    "paid_at",
    "settled_at",
)
INVOICES_HEADER: Final = (
    "invoice_id",
    "order_id",
    "description",
    "status",
    "payment_exception",
    "amount",
    "amount_received",
    "amount_confirmed",
    "amount_due",
    "currency",
    "fee_percentage",
    "deposit_address",
    "tx_hashes",
    "block_numbers",
    "created_at",
    "expires_at",
    "paid_at",
    "expired_at",
    "cancelled_at",
)


def safe_cell(value: object) -> str:
    """The cell's text, made inert for spreadsheets when it could be read as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _joined(values: Iterable[object] | None) -> str:
    return " ".join(str(v) for v in values or ())


def _fee(value: object) -> str:
    return "" if value is None else format_fee_percentage(Decimal(str(value)))


def settlement_cells(row: dict[str, Any]) -> list[object]:
    return [
        row["settlement_id"],
        row["invoice_id"],
        row["order_id"],
        format_usdt(int(row["gross_amount"])),
        format_usdt(int(row["platform_fee_amount"])),
        _fee(row["platform_fee_percentage"]),
        format_usdt(int(row["net_amount"])),
        "USDT",
        row["status"],
        _joined(row["tx_hashes"]),
        _joined(row["block_numbers"]),
        format_time(row["paid_at"]),
        format_time(row["settled_at"]),
    ]


def invoice_cells(row: dict[str, Any]) -> list[object]:
    return [
        row["invoice_id"],
        row["order_id"],
        row["description"],
        row["status"],
        row["payment_exception"],
        format_usdt(int(row["amount"])),
        format_usdt(int(row["amount_received"])),
        format_usdt(int(row["amount_confirmed"])),
        format_usdt(int(row["amount_due"])),
        "USDT",
        _fee(row["fee_percentage"]),
        row["deposit_address"],
        _joined(row["tx_hashes"]),
        _joined(row["block_numbers"]),
        format_time(row["created_at"]),
        format_time(row["expires_at"]),
        format_time(row["paid_at"]),
        format_time(row["expired_at"]),
        format_time(row["cancelled_at"]),
    ]


def csv_lines(rows: Iterable[Sequence[object]]) -> bytes:
    """RFC 4180 lines (CRLF, minimal quoting) of ``rows``, every cell made safe, UTF-8."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return buffer.getvalue().encode()


class ExportsApi:
    def __init__(
        self,
        auth: Authenticator,
        exports: ExportReads,
        *,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        self._auth = auth
        self._exports = exports
        self._today = today

    def add_routes(self, router: aioweb.UrlDispatcher) -> None:
        router.add_get("/api/v1/exports/settlements.csv", self.settlements)
        router.add_get("/api/v1/exports/invoices.csv", self.invoices)

    async def settlements(self, request: aioweb.Request) -> aioweb.StreamResponse:
        return await self._export(
            request, "settlements", self._exports.settlements, SETTLEMENTS_HEADER, settlement_cells
        )

    async def invoices(self, request: aioweb.Request) -> aioweb.StreamResponse:
        return await self._export(
            request, "invoices", self._exports.invoices, INVOICES_HEADER, invoice_cells
        )

    async def _export(
        self,
        request: aioweb.Request,
        kind: str,
        read: Callable[[str, datetime, datetime], AsyncIterator[list[dict[str, Any]]]],
        header: Sequence[str],
        cells: Callable[[dict[str, Any]], list[object]],
    ) -> aioweb.StreamResponse:
        """The merchant's ``kind`` of the requested days, as a CSV download."""
        merchant = await self._auth.merchant(request, Scope.REPORTS_READ)
        first, last = day_range(request.query, self._today())
        pages = read(merchant.merchant_id, *_bounds(first, last))
        name = f"{kind}-{first.isoformat()}-{last.isoformat()}.csv"
        return await _stream(request, name, header, pages, cells)


def _bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """The UTC instants [first 00:00, the day after last 00:00)."""
    return (
        datetime.combine(first, time(), tzinfo=UTC),
        datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC),
    )


async def _stream(
    request: aioweb.Request,
    filename: str,
    header: Sequence[str],
    pages: AsyncIterator[list[dict[str, Any]]],
    cells: Callable[[dict[str, Any]], list[object]],
) -> aioweb.StreamResponse:
    # The first page is read before the response starts, so a PostgreSQL that is down is still
    # an ordinary error response; later failures break the download (see the module's docstring).
    first_page: list[dict[str, Any]] = await anext(pages, [])
    response = aioweb.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8; header=present",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(csv_lines([header]) + csv_lines(cells(row) for row in first_page))
    try:
        async for page in pages:
            await response.write(csv_lines(cells(row) for row in page))
    except Exception:
        # The headers and some rows are out: an error response cannot follow. Cut the
        # connection so the client's download fails instead of ending as a complete-looking file.
        if request.transport is not None:
            request.transport.abort()
        raise  # logged by the error middleware, which can no longer answer
    await response.write_eof()
    return response
