"""Refunds and payouts over HTTP (web/money_out_api.py) on the real services with in-memory
ports: what a merchant may ask, what is refused and how it is named, what the balance says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from app.adapters.tron.settings import DEV_HOT_WALLET
from tests.support.fakes import MemoryMoneyOut, MemoryWorld
from tests.unit.domain.factories import new_settlement, usdt

from .conftest import OTHER, SHOP

pytestmark = pytest.mark.component

CUSTOMER = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
OTHER_CUSTOMER = "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8"


def store(world: MemoryWorld) -> MemoryMoneyOut:
    found = world.ports.money_out
    assert isinstance(found, MemoryMoneyOut)
    return found


async def settle(world: MemoryWorld, invoice_id: str, gross: str, amount: str) -> None:
    """An invoice of ``amount`` paid with ``gross`` by CUSTOMER, settled at 1 %."""
    await world.ledger.book_settlement(
        new_settlement(
            invoice_id=invoice_id,
            merchant_id="mer_shop",
            gross_amount=usdt(gross),
            fee_percentage=Decimal("1"),
        )
    )
    store(world).invoice_amounts[invoice_id] = usdt(amount)
    store(world).senders[invoice_id] = (CUSTOMER,)


def key(value: str) -> dict[str, str]:
    return {**SHOP, "Idempotency-Key": value}


async def post(client: TestClient, path: str, body: Any, headers: dict[str, str]) -> Any:
    response = await client.post(path, json=body, headers=headers)
    return response.status, await response.json()


async def test_an_overpayment_is_refunded_to_its_sender_by_default(
    client: TestClient, world: MemoryWorld
) -> None:
    await settle(world, "inv_over", gross="12", amount="10")
    status, refund = await post(client, "/api/v1/invoices/inv_over/refunds", {}, key("r-1"))
    assert status == 201, refund
    assert refund["object"] == "refund" and refund["status"] == "pending"
    assert (refund["amount"], refund["address"], refund["invoice_id"]) == (
        "2",
        CUSTOMER,
        "inv_over",
    )
    assert refund["network_fee"] == {"payer": "platform", "charged": "0", "burned_trx": None}
    # Debited at once: 11.88 net − 2.00.
    assert store(world).balance("merchant:mer_shop") == usdt("9.88")
    assert store(world).balance("merchant:mer_shop:in_flight") == usdt("2")

    # The same key again answers the same refund; a different body under it is a conflict.
    status, again = await post(client, "/api/v1/invoices/inv_over/refunds", {}, key("r-1"))
    assert status == 200 and again["id"] == refund["id"]
    status, conflict = await post(
        client, "/api/v1/invoices/inv_over/refunds", {"amount": "1"}, key("r-1")
    )
    assert status == 409, conflict
    # Nothing is left of the overpayment to refund by default.
    status, error = await post(client, "/api/v1/invoices/inv_over/refunds", {}, key("r-2"))
    assert status == 422 and error["error"]["code"] == "refund_not_allowed"

    response = await client.get(f"/api/v1/refunds/{refund['id']}", headers=SHOP)
    assert (await response.json())["id"] == refund["id"]
    assert (await client.get(f"/api/v1/refunds/{refund['id']}", headers=OTHER)).status == 404
    listed = await (await client.get("/api/v1/invoices/inv_over/refunds", headers=SHOP)).json()
    assert [item["id"] for item in listed["data"]] == [refund["id"]]
    assert store(world).outbox[-1][1]["event_type"] == "RefundCreated"


async def test_refunds_are_refused_with_the_reason_named(
    client: TestClient, world: MemoryWorld
) -> None:
    await settle(world, "inv_paid", gross="10", amount="10")
    cases = [
        ({}, key("a"), "/api/v1/invoices/inv_none/refunds", 422, "refund_not_allowed",
         "invoice_id"),
        ({}, key("b"), "/api/v1/invoices/inv_paid/refunds", 422, "refund_not_allowed", "amount"),
        ({"amount": "10.01"}, key("c"), "/api/v1/invoices/inv_paid/refunds", 422,
         "insufficient_balance", "amount"),
        ({"amount": "1", "address": DEV_HOT_WALLET}, key("d"),
         "/api/v1/invoices/inv_paid/refunds", 422, "address_not_allowed", "address"),
        ({"amount": "1", "address": "T" + "1" * 33}, key("e"),
         "/api/v1/invoices/inv_paid/refunds", 400, "parameter_invalid", "address"),
        ({"amount": "1.0000001"}, key("f"), "/api/v1/invoices/inv_paid/refunds", 400,
         "amount_too_many_decimals", "amount"),
        ({"amount": "1", "memo": "x"}, key("g"), "/api/v1/invoices/inv_paid/refunds", 400,
         "parameter_unknown", "memo"),
        ({"amount": "1"}, SHOP, "/api/v1/invoices/inv_paid/refunds", 400,
         "idempotency_key_required", "Idempotency-Key"),
    ]  # fmt: skip
    for body, headers, path, expected, code, param in cases:
        status, answer = await post(client, path, body, headers)
        assert (status, answer["error"]["code"], answer["error"]["param"]) == (
            expected,
            code,
            param,
        ), body
    store(world).senders["inv_paid"] = (CUSTOMER, OTHER_CUSTOMER)
    status, answer = await post(
        client, "/api/v1/invoices/inv_paid/refunds", {"amount": "1"}, key("h")
    )
    assert status == 422 and answer["error"]["param"] == "address"
    status, _ = await post(
        client,
        "/api/v1/invoices/inv_paid/refunds",
        {"amount": "1", "address": OTHER_CUSTOMER},
        key("i"),
    )
    assert status == 201


async def test_a_payout_above_the_threshold_waits_for_the_admin(
    client: TestClient, world: MemoryWorld
) -> None:
    await settle(world, "inv_big", gross="5000", amount="5000")
    status, small = await post(
        client, "/api/v1/payouts", {"amount": "999.99", "address": CUSTOMER}, key("p-1")
    )
    assert status == 201 and small["status"] == "approved" and small["approval"] == "automatic"
    status, large = await post(
        client, "/api/v1/payouts", {"amount": "1000", "address": CUSTOMER}, key("p-2")
    )
    assert status == 201 and large["status"] == "requested" and large["approval"] == "admin"
    assert store(world).balance("merchant:mer_shop") == usdt("4950") - usdt("1999.99")

    # The merchant cannot approve it; the admin can, once.
    response = await client.post(f"/api/v1/admin/payouts/{large['id']}/approve", headers=SHOP)
    assert response.status == 403
    await world.services.users.create_user(
        email="admin@platform.example", password="correct horse battery", role="admin",
        merchant_id=None,
    )  # fmt: skip
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": "admin@platform.example", "password": "correct horse battery"},
    )
    admin = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
    waiting = await (await client.get("/api/v1/admin/payouts", headers=admin)).json()
    assert [item["id"] for item in waiting["data"]] == [large["id"]]
    approved = await client.post(f"/api/v1/admin/payouts/{large['id']}/approve", headers=admin)
    body = await approved.json()
    assert approved.status == 200 and body["status"] == "approved"
    assert body["merchant_id"] == "mer_shop"
    events = [payload["event_type"] for _, payload, _ in store(world).outbox]
    assert events == ["PayoutCreated", "PayoutCreated", "PayoutApproved"]

    # Cancelled before signing: the amount is back in the balance.
    status, cancelled = await post(client, f"/api/v1/payouts/{small['id']}/cancel", None, SHOP)
    assert status == 200 and cancelled["status"] == "cancelled"
    assert store(world).balance("merchant:mer_shop") == usdt("4950") - usdt("1000")
    status, again = await post(client, f"/api/v1/payouts/{small['id']}/cancel", None, SHOP)
    assert status == 200 and again["status"] == "cancelled"

    page = await (await client.get("/api/v1/payouts?limit=1", headers=SHOP)).json()
    assert page["has_more"] and len(page["data"]) == 1
    rest = await (
        await client.get(f"/api/v1/payouts?limit=1&cursor={page['next_cursor']}", headers=SHOP)
    ).json()
    assert {page["data"][0]["id"], rest["data"][0]["id"]} == {small["id"], large["id"]}
    assert (await client.get(f"/api/v1/payouts/{small['id']}", headers=OTHER)).status == 404


async def test_a_payout_needs_the_balance_and_an_outside_address(
    client: TestClient, world: MemoryWorld
) -> None:
    await settle(world, "inv_a", gross="50", amount="50")
    store(world).ours.add(OTHER_CUSTOMER)  # as if it were one of our deposit addresses
    cases = [
        ({"amount": "49.51", "address": CUSTOMER}, 422, "insufficient_balance", "amount"),
        ({"amount": "1", "address": OTHER_CUSTOMER}, 422, "address_not_allowed", "address"),
        ({"amount": "1"}, 400, "parameter_missing", "address"),
        ({"amount": "-1", "address": CUSTOMER}, 400, "amount_negative", "amount"),
        ({"amount": 1e400, "address": CUSTOMER}, 400, None, None),
    ]
    for index, (body, expected, code, param) in enumerate(cases):
        response = await client.post("/api/v1/payouts", json=body, headers=key(f"x-{index}"))
        answer = await response.json()
        assert response.status == expected, (body, answer)
        if code is not None:
            assert (answer["error"]["code"], answer["error"]["param"]) == (code, param)
    assert store(world).balance("merchant:mer_shop") == usdt("49.50")


async def test_a_payout_schedule_pays_each_due_period_once(
    client: TestClient, world: MemoryWorld
) -> None:
    await settle(world, "inv_s", gross="300", amount="300")
    schedule = {
        "frequency": "weekly",
        "weekday": "friday",
        "hour": 17,
        "address": CUSTOMER,
        "minimum_amount": "50",
        "keep_amount": "100",
    }
    response = await client.put("/api/v1/payout-schedule", json=schedule, headers=SHOP)
    body = await response.json()
    assert response.status == 200, body
    assert (body["weekday"], body["keep_amount"], body["minimum_amount"]) == ("friday", "100", "50")
    assert (await client.get("/api/v1/payout-schedule", headers=SHOP)).status == 200
    assert (await client.get("/api/v1/payout-schedule", headers=OTHER)).status == 404

    reports = world.ports.reports
    reports.balances["mer_shop"] = {  # type: ignore[attr-defined]
        "available": store(world).balance("merchant:mer_shop"),
        "incoming": 0,
        "outgoing": 0,
    }
    schedules = world.services.payout_schedules
    thursday, friday = datetime(2026, 12, 3, 18, tzinfo=UTC), datetime(2026, 12, 4, 17, tzinfo=UTC)
    assert await schedules.pay_due(thursday) == 0
    assert await schedules.pay_due(friday) == 1
    assert await schedules.pay_due(friday + timedelta(hours=5)) == 1  # the same, once
    payouts = [t for t in store(world).transfers.values() if t.kind.value == "payout"]
    assert len(payouts) == 1
    assert payouts[0].amount == usdt("297") - usdt("100")  # net 297.00, 100.00 kept
    assert payouts[0].to_address == CUSTOMER

    bad = dict(schedule, weekday="someday")
    response = await client.put("/api/v1/payout-schedule", json=bad, headers=SHOP)
    assert response.status == 400 and (await response.json())["error"]["param"] == "weekday"
    ours = dict(schedule, address=DEV_HOT_WALLET)
    response = await client.put("/api/v1/payout-schedule", json=ours, headers=SHOP)
    assert response.status == 422
    assert (await client.delete("/api/v1/payout-schedule", headers=SHOP)).status == 200
    assert (await client.get("/api/v1/payout-schedule", headers=SHOP)).status == 404


async def test_money_received_after_expiry_or_after_payment_is_refunded_from_what_came(
    client: TestClient, world: MemoryWorld
) -> None:
    # Expired, then paid in full late: nothing settled, 10.00 held on the address.
    store(world).invoice_status["inv_late"] = "expired"
    store(world).invoice_confirmed["inv_late"] = usdt("10")
    store(world).senders["inv_late"] = (CUSTOMER,)
    before = store(world).balance("merchant:mer_shop")
    status, refund = await post(client, "/api/v1/invoices/inv_late/refunds", {}, key("late-1"))
    assert status == 201, refund
    assert refund["amount"] == "10" and refund["network_fee"]["charged"] == "0"
    assert store(world).transfers[refund["id"]].source == "received"
    assert store(world).balance("merchant:mer_shop") == before  # not the merchant's money
    status, error = await post(client, "/api/v1/invoices/inv_late/refunds", {}, key("late-2"))
    assert status == 422 and error["error"]["code"] == "refund_not_allowed"

    # Paid and settled on 10.00, then 3.00 more arrived (recorded, never settled).
    await settle(world, "inv_after", gross="10", amount="10")
    store(world).invoice_confirmed["inv_after"] = usdt("13")
    status, refund = await post(client, "/api/v1/invoices/inv_after/refunds", {}, key("after-1"))
    assert status == 201 and refund["amount"] == "3"
    assert store(world).transfers[refund["id"]].source == "received"

    # An open invoice is resolved, not refunded.
    store(world).invoice_status["inv_open"] = "confirming"
    store(world).invoice_confirmed["inv_open"] = usdt("4")
    status, error = await post(client, "/api/v1/invoices/inv_open/refunds", {}, key("open-1"))
    assert status == 422 and "resolve" in error["error"]["message"]
