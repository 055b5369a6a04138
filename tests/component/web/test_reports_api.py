"""The reports API on aiohttp's test client: summary, daily figures and balance, their inputs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.support.fakes import MemoryReports, MemoryWorld

from .conftest import OTHER, SHOP

pytestmark = pytest.mark.component


def reports(world: MemoryWorld) -> MemoryReports:
    found = world.ports.reports
    assert isinstance(found, MemoryReports)
    return found


async def get(client: TestClient, path: str, headers: dict[str, str] = SHOP) -> tuple[int, Any]:
    response = await client.get(path, headers=headers)
    return response.status, await response.json()


async def test_the_summary_is_the_merchants_dashboard_row_in_usdt(
    client: TestClient, world: MemoryWorld
) -> None:
    reports(world).summaries["mer_shop"] = {
        "gross_volume": 165_990_000, "fees": 1_659_900, "net_volume": 164_330_100,
        "balance": 164_330_100, "settlements": 3, "invoices_created": 7,
        "invoices_pending": 1, "invoices_confirming": 0, "invoices_paid": 3,
        "invoices_expired": 2, "invoices_cancelled": 1, "invoices_underpaid": 1,
        "invoices_overpaid": 1, "invoices_paid_late": 0, "ms_to_paid_total": 7_500,
        "paid_with_time": 3, "updated_at": datetime(2026, 12, 1, 12, 0, tzinfo=UTC),
    }  # fmt: skip
    status, body = await get(client, "/api/v1/reports/summary")
    assert status == 200
    assert body == {
        "object": "report_summary",
        "currency": "USDT",
        "gross_volume": "165.99",
        "fees": "1.6599",
        "net_volume": "164.3301",
        "balance": "164.3301",
        "settlements": 3,
        "invoices_created": 7,
        "invoices_paid": 3,
        "invoices_by_status": {
            "pending": 1, "confirming": 0, "paid": 3, "expired": 2, "cancelled": 1,
        },
        "invoices_by_exception": {"underpaid": 1, "overpaid": 1, "paid_late": 0},
        "conversion_rate": 0.4286,
        "average_seconds_to_paid": 2.5,
        "updated_at": "2026-12-01T12:00:00Z",
    }  # fmt: skip
    # Another merchant sees their own row: none yet, so zeros and no rates.
    status, other = await get(client, "/api/v1/reports/summary", OTHER)
    assert (status, other["gross_volume"], other["invoices_created"]) == (200, "0", 0)
    assert other["conversion_rate"] is None and other["average_seconds_to_paid"] is None
    assert ("summary", "mer_other") in reports(world).asked


async def test_daily_figures_have_one_entry_per_day_of_the_range(
    client: TestClient, world: MemoryWorld
) -> None:
    reports(world).days["mer_shop"] = [
        {"day": date(2026, 11, 2), "gross_volume": 10_000_000, "fees": 100_000,
         "net_volume": 9_900_000, "settlements": 1, "invoices_created": 2, "invoices_paid": 1,
         "invoices_expired": 0},
    ]  # fmt: skip
    status, body = await get(client, "/api/v1/reports/daily?from=2026-11-01&to=2026-11-03")
    assert status == 200
    assert (body["from"], body["to"], body["currency"]) == ("2026-11-01", "2026-11-03", "USDT")
    assert [d["date"] for d in body["data"]] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert body["data"][1] == {
        "date": "2026-11-02", "gross_volume": "10", "fees": "0.1", "net_volume": "9.9",
        "settlements": 1, "invoices_created": 2, "invoices_paid": 1, "invoices_expired": 0,
    }  # fmt: skip
    assert body["data"][0]["gross_volume"] == "0" and body["data"][2]["settlements"] == 0


async def test_daily_figures_default_to_the_last_30_days(client: TestClient) -> None:
    status, body = await get(client, "/api/v1/reports/daily")
    today = datetime.now(UTC).date()
    assert status == 200 and len(body["data"]) == 30
    assert (body["from"], body["to"]) == (
        (today - timedelta(days=29)).isoformat(),
        today.isoformat(),
    )


@pytest.mark.parametrize(
    ("query", "param", "message"),
    [
        ("from=2026-13-01", "from", "YYYY-MM-DD"),
        ("from=20261101", "from", "YYYY-MM-DD"),
        ("to=2026-11-01T00:00:00Z", "to", "YYYY-MM-DD"),
        ("from=2026-11-03&to=2026-11-01", "to", "same day as from or later"),
        ("from=2024-01-01&to=2026-01-01", "to", "at most 366 days"),
        ("from=2026-11-01&from=2026-11-02", "from", "given 2 times"),
        ("since=2026-11-01", "since", "unknown parameter"),
        ("from=%002026-11-01", "from", "control character"),  # the edge, before any work
    ],
)
async def test_a_bad_range_is_refused_naming_the_parameter(
    client: TestClient, world: MemoryWorld, query: str, param: str, message: str
) -> None:
    status, body = await get(client, f"/api/v1/reports/daily?{query}")
    assert status == 400
    assert body["error"]["param"] == param and message in body["error"]["message"]
    assert not [a for a in reports(world).asked if a[0] == "daily"]  # refused before the query


async def test_the_balance_is_available_and_in_flight(
    client: TestClient, world: MemoryWorld
) -> None:
    reports(world).balances["mer_shop"] = {
        "available": 164_330_100,
        "incoming": 20_000_000,
        "outgoing": 2_500_000,
    }
    status, body = await get(client, "/api/v1/balance")
    assert (status, body) == (
        200,
        {
            "object": "balance",
            "currency": "USDT",
            "available": "164.3301",
            "in_flight": "22.5",
            "incoming": "20",
            "outgoing": "2.5",
        },
    )
    status, body = await get(client, "/api/v1/balance?currency=TRX")
    assert (status, body["error"]["param"]) == (400, "currency")


async def test_reports_need_the_reports_scope(client: TestClient) -> None:
    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "invoices only", "scopes": ["invoices:read"]},
        headers=SHOP,
    )
    key = (await created.json())["secret"]
    for path in ("/api/v1/reports/summary", "/api/v1/reports/daily", "/api/v1/balance"):
        status, _ = await get(client, path, {"Authorization": f"Bearer {key}"})
        assert status == 403, path
    status, _ = await get(client, "/api/v1/balance", {})
    assert status == 401


async def test_the_platform_revenue_is_for_admins_only(
    client: TestClient, world: MemoryWorld
) -> None:
    reports(world).revenue = [
        {"day": date(2026, 11, 2), "settlements": 2, "gross_volume": 20_000_000,
         "fees": 200_000, "net_volume": 19_800_000},
        {"day": date(2026, 11, 3), "settlements": 1, "gross_volume": 5_000_000,
         "fees": 50_000, "net_volume": 4_950_000},
    ]  # fmt: skip
    status, body = await get(client, "/api/v1/admin/reports/revenue?from=2026-11-01&to=2026-11-03")
    assert status == 403  # a merchant's key is not the platform's admin
    password = "correct horse battery staple"
    await world.services.users.create_user(
        email="admin@platform.example", password=password, role="admin", merchant_id=None
    )
    session = await client.post(
        "/api/v1/auth/login", json={"email": "admin@platform.example", "password": password}
    )
    headers = {"Authorization": f"Bearer {(await session.json())['access_token']}"}
    status, body = await get(
        client, "/api/v1/admin/reports/revenue?from=2026-11-01&to=2026-11-03", headers
    )
    assert status == 200
    assert body["total"] == {
        "settlements": 3, "gross_volume": "25", "fees": "0.25", "net_volume": "24.75",
    }  # fmt: skip
    assert [d["fees"] for d in body["data"]] == ["0", "0.2", "0.05"]
