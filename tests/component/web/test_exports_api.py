"""The CSV exports on aiohttp's test client: RFC 4180, spreadsheet-safe cells, streamed pages."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.support.fakes import MemoryExports, MemoryWorld
from web.exports_api import SETTLEMENTS_HEADER, safe_cell

from .conftest import SHOP

pytestmark = pytest.mark.component

PAID = datetime(2026, 11, 2, 10, 30, tzinfo=UTC)


def exports(world: MemoryWorld) -> MemoryExports:
    found = world.ports.exports
    assert isinstance(found, MemoryExports)
    return found


def settlement(n: int, order_id: str | None = None) -> dict[str, Any]:
    return {
        "settlement_id": f"stl_{n}", "invoice_id": f"inv_{n}", "order_id": order_id,
        "gross_amount": 9_990_000, "platform_fee_amount": 99_900,
        "platform_fee_percentage": Decimal("1.00"), "net_amount": 9_890_100,
        "status": "completed", "tx_hashes": [f"{n:064x}"], "block_numbers": [1000 + n],
        "paid_at": PAID, "settled_at": PAID, "created_at": PAID,
    }  # fmt: skip


async def test_the_settlements_csv_has_a_header_and_every_row_in_order(
    client: TestClient, world: MemoryWorld
) -> None:
    exports(world).settlement_rows = [settlement(n, f"order-{n}") for n in range(1, 6)]
    response = await client.get(
        "/api/v1/exports/settlements.csv?from=2026-11-01&to=2026-11-30", headers=SHOP
    )
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv; charset=utf-8")
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="settlements-2026-11-01-2026-11-30.csv"'
    )
    raw = await response.read()
    assert raw.count(b"\r\n") == 6 and raw.endswith(b"\r\n")  # RFC 4180 line ends
    rows = list(csv.reader(io.StringIO(raw.decode())))
    assert tuple(rows[0]) == SETTLEMENTS_HEADER
    assert [row[0] for row in rows[1:]] == [f"stl_{n}" for n in range(1, 6)]
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first == {
        "settlement_id": "stl_1", "invoice_id": "inv_1", "order_id": "order-1",
        "gross_amount": "9.99", "platform_fee_amount": "0.0999",
        "platform_fee_percentage": "1", "net_amount": "9.8901", "currency": "USDT",
        "status": "completed", "tx_hashes": f"{1:064x}", "block_numbers": "1001",
        "paid_at": "2026-11-02T10:30:00Z", "settled_at": "2026-11-02T10:30:00Z",
    }  # fmt: skip
    # The range is UTC days, both included: [Nov 1 00:00, Dec 1 00:00).
    [(_, merchant, start, end)] = exports(world).asked
    assert merchant == "mer_shop"
    assert (start, end) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("order, with comma", "order, with comma"),
        ('say "hi"', 'say "hi"'),
        ("two\nlines", "two\nlines"),
        (None, ""),
    ],
)
async def test_a_cell_a_spreadsheet_would_run_is_shown_as_text(
    client: TestClient, world: MemoryWorld, typed: str | None, shown: str
) -> None:
    assert safe_cell(typed) == shown
    exports(world).settlement_rows = [settlement(1, typed)]
    response = await client.get("/api/v1/exports/settlements.csv", headers=SHOP)
    rows = list(csv.reader(io.StringIO((await response.read()).decode(), newline="")))
    assert rows[1][2] == shown  # quoted as RFC 4180 requires, read back intact


async def test_the_invoices_csv_streams_every_page(client: TestClient, world: MemoryWorld) -> None:
    exports(world).page = 3
    exports(world).invoice_rows = [
        {
            "invoice_id": f"inv_{n}", "order_id": None, "description": "café ☕",
            "status": "paid", "payment_exception": None, "amount": 5_000_000,
            "amount_received": 5_000_000, "amount_confirmed": 5_000_000, "amount_due": 0,
            "fee_percentage": Decimal("2.50"), "deposit_address": "TJRabPrwbZy45sbavfcjinPJC",
            "tx_hashes": [], "block_numbers": [], "created_at": PAID, "expires_at": PAID,
            "paid_at": PAID, "expired_at": None, "cancelled_at": None,
        }
        for n in range(10)
    ]  # fmt: skip
    response = await client.get("/api/v1/exports/invoices.csv", headers=SHOP)
    assert response.status == 200
    rows = list(csv.reader(io.StringIO((await response.read()).decode("utf-8"))))
    assert len(rows) == 11
    record = dict(zip(rows[0], rows[1], strict=True))
    assert (record["description"], record["fee_percentage"], record["amount_due"]) == (
        "café ☕",
        "2.5",
        "0",
    )


async def test_a_database_failure_midway_breaks_the_download(
    client: TestClient, world: MemoryWorld
) -> None:
    exports(world).settlement_rows = [settlement(n) for n in range(6)]
    exports(world).fail_after_pages = 1  # the first page is sent, the second read fails
    response = await client.get("/api/v1/exports/settlements.csv", headers=SHOP)
    assert response.status == 200  # already sent with the first page
    with pytest.raises(aiohttp.ClientPayloadError):  # a broken body, not a short file
        await response.read()


async def test_a_failure_before_the_first_page_is_an_error_response(
    client: TestClient, world: MemoryWorld
) -> None:
    exports(world).settlement_rows = [settlement(1)]
    exports(world).fail_after_pages = 0
    response = await client.get("/api/v1/exports/settlements.csv", headers=SHOP)
    assert response.status >= 500
    assert response.headers["Content-Type"].startswith("application/json")


async def test_exports_take_the_reports_scope_and_a_bounded_range(client: TestClient) -> None:
    response = await client.get("/api/v1/exports/invoices.csv?from=2020-01-01", headers=SHOP)
    assert response.status == 200  # from alone: 30 days from it
    response = await client.get(
        "/api/v1/exports/invoices.csv?from=2020-01-01&to=2026-01-01", headers=SHOP
    )
    assert response.status == 400
    assert (await response.json())["error"]["param"] == "to"
    created = await client.post(
        "/api/v1/api-keys", json={"name": "no reports", "scopes": ["invoices:read"]}, headers=SHOP
    )
    key = (await created.json())["secret"]
    response = await client.get(
        "/api/v1/exports/settlements.csv", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status == 403
