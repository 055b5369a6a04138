"""The merchant API on aiohttp's test client: what a merchant's integration sees."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from app.domain.commands import ApplyPaymentConfirmed, ApplyPaymentDetected
from app.domain.policies import settlement_command_for
from app.domain.statuses import InvoiceStatus
from tests.support.fakes import MemoryWorld

from .conftest import OTHER, SHOP

pytestmark = pytest.mark.component


async def create(client: TestClient, body: dict[str, Any], **headers: str) -> Any:
    return await client.post("/api/v1/invoices", json=body, headers={**SHOP, **headers})


async def pay_in_full(world: MemoryWorld, invoice_id: str, amount: int) -> None:
    """What the payment agent tells the invoice agent about a payment in one block."""
    commands = world.services.invoice_commands
    now = (await _invoice(world, invoice_id)).created_at
    await commands.apply(
        ApplyPaymentDetected(
            command_id="detected-1",
            invoice_id=invoice_id,
            payment_id="p1",
            amount=amount,
            detected_at=now,
        )
    )
    await commands.apply(
        ApplyPaymentConfirmed(
            command_id="confirmed-1", invoice_id=invoice_id, payment_id="p1", amount=amount,
            confirmed_at=now,
        )
    )  # fmt: skip


async def _invoice(world: MemoryWorld, invoice_id: str) -> Any:
    invoice = world.tables.invoices.get(invoice_id)
    assert invoice is not None
    return invoice


async def test_creating_an_invoice_answers_201_with_its_deposit_address_and_fee(
    client: TestClient, world: MemoryWorld
) -> None:
    response = await create(client, {"amount": "9.99", "order_id": "order-1"})
    assert response.status == 201
    body = await response.json()
    assert response.headers["Location"] == f"/api/v1/invoices/{body['id']}"
    assert (body["status"], body["amount"], body["amount_due"]) == ("pending", "9.99", "9.99")
    assert body["fee_percentage"] == "1"
    assert body["deposit_address"] == world.ports.addresses.allocated[body["id"]].address
    assert body["payment_url"] == f"/pay/{body['id']}"
    assert world.publisher.event_types() == ["InvoiceCreated"]


async def test_an_idempotency_key_replays_the_first_answer_and_refuses_another_body(
    client: TestClient, world: MemoryWorld
) -> None:
    first = await create(client, {"amount": "5"}, **{"Idempotency-Key": "order-7"})
    again = await create(client, {"amount": "5"}, **{"Idempotency-Key": "order-7"})
    assert (first.status, again.status) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await first.json())["id"] == (await again.json())["id"]
    assert len(world.ports.addresses.allocated) == 1  # no second address used up

    reused = await create(client, {"amount": "6"}, **{"Idempotency-Key": "order-7"})
    assert reused.status == 409
    assert (await reused.json())["error"] == {
        "type": "conflict_error",
        "code": "idempotency_key_reused",
        "message": "this Idempotency-Key was used with a different request body; use a new key "
        "for a new invoice",
        "param": "Idempotency-Key",
    }


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        ('{"amount": "0"}', "amount_zero", "amount"),
        ('{"amount": "1.0000001"}', "amount_too_many_decimals", "amount"),
        ('{"amount": 1e400}', "amount_too_large", "amount"),
        ('{"amount": 1e999999999999999999}', "amount_too_large", "amount"),
        ('{"amount": 1e-999999999}', "amount_too_many_decimals", "amount"),
        ('{"amount": "1", "expires_in": 1e300000}', "parameter_invalid", "expires_in"),
        ('{"amount": "1", "expires_in": 1e1000000}', "parameter_invalid", "expires_in"),
        ('{"amount": "1", "expires_in": ' + "9" * 5000 + "}", "parameter_invalid", "expires_in"),
        ('{"amount": Infinity}', "invalid_json", None),
        ("{}", "parameter_missing", "amount"),
        ('{"amount": "1", "tip": "2"}', "parameter_unknown", "tip"),
        ('{"amount": "1", "order_id": "a\\u0000b"}', "parameter_invalid", "order_id"),
        ('{"amount": "1", "order_id": "line\\nbreak"}', "parameter_invalid", "order_id"),
        ('{"amount": "1", "description": "\\ud800"}', "parameter_invalid", "description"),
        ('{"amount": "1", "metadata": {"k\\u0007": "v"}}', "parameter_invalid", None),
        ('{"amount": "1", "metadata": {"k": "\\u0000"}}', "parameter_invalid", "metadata.k"),
        ("[" * 1000 + "]" * 1000, "invalid_json", None),
        ('{"a":' * 20 + "1" + "}" * 20, "invalid_json", None),
    ],
)
async def test_bad_input_is_a_400_naming_the_field_and_uses_up_nothing(
    client: TestClient, world: MemoryWorld, raw: str, code: str, param: str | None
) -> None:
    response = await client.post(
        "/api/v1/invoices", data=raw, headers={**SHOP, "Content-Type": "application/json"}
    )
    assert response.status == 400
    error = (await response.json())["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", code)
    if param is not None:
        assert error["param"] == param
    assert world.ports.addresses.allocated == {}
    assert world.publisher.events == []


async def test_a_body_over_64_kib_is_a_413_before_it_is_read(client: TestClient) -> None:
    body = '{"amount": "1", "description": "' + "x" * (64 * 1024) + '"}'
    response = await client.post("/api/v1/invoices", data=body, headers=SHOP)
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(
    ("key", "accepted"), [("k" * 128, True), ("k" * 129, False), ("ключ", False), ("", False)]
)
async def test_an_idempotency_key_is_1_to_128_printable_ascii_characters(
    client: TestClient, world: MemoryWorld, key: str, accepted: bool
) -> None:
    response = await client.post(
        "/api/v1/invoices",
        json={"amount": "1"},
        headers={**SHOP, "Idempotency-Key": key} if key else {**SHOP, "Idempotency-Key": " "},
    )
    if accepted:
        assert response.status == 201
        return
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "idempotency_key_invalid"
    assert world.ports.addresses.allocated == {}


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/api/v1/invoices/inv%001", "invoice_id"),
        ("/api/v1/settlements/set%00x", "settlement_id"),
        ("/api/v1/invoices/" + "i" * 200, "invoice_id"),
        ("/api/v1/settlements?limit=%C2%B2", "limit"),
        ("/api/v1/settlements?limit=" + "9" * 5000, "limit"),
        ("/api/v1/settlements?invoice_id=inv%0A1", "invoice_id"),
        ("/api/v1/invoices?limit=%C2%B2", "limit"),
    ],
)
async def test_path_ids_and_query_parameters_are_plain_and_short(
    client: TestClient, path: str, param: str
) -> None:
    response = await client.get(path, headers=SHOP)
    assert response.status == 400
    error = (await response.json())["error"]
    assert (error["code"], error["param"]) == ("parameter_invalid", param)


async def test_without_a_valid_key_nothing_is_answered(client: TestClient) -> None:
    missing = await client.post("/api/v1/invoices", json={"amount": "1"})
    assert missing.status == 401
    assert (await missing.json())["error"]["code"] == "authentication_required"
    wrong = await client.get("/api/v1/invoices/inv_1", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_merchant_reads_only_their_own_invoices(client: TestClient) -> None:
    invoice = await (await create(client, {"amount": "9.99"})).json()
    mine = await client.get(f"/api/v1/invoices/{invoice['id']}", headers=SHOP)
    assert mine.status == 200
    assert (await mine.json())["id"] == invoice["id"]
    theirs = await client.get(f"/api/v1/invoices/{invoice['id']}", headers=OTHER)
    unknown = await client.get("/api/v1/invoices/inv_nobody", headers=SHOP)
    assert theirs.status == unknown.status == 404
    assert (await theirs.json())["error"]["code"] == "invoice_not_found"


async def test_cancelling_a_pending_invoice_and_refusing_to_cancel_a_paid_one(
    client: TestClient, world: MemoryWorld
) -> None:
    pending = await (await create(client, {"amount": "3"})).json()
    cancelled = await client.post(
        f"/api/v1/invoices/{pending['id']}/cancel", json={"reason": "out of stock"}, headers=SHOP
    )
    assert cancelled.status == 200
    body = await cancelled.json()
    assert (body["status"], body["cancellation_reason"]) == ("cancelled", "out of stock")

    paid = await (await create(client, {"amount": "9.99"})).json()
    await pay_in_full(world, paid["id"], 9_990_000)
    refused = await client.post(f"/api/v1/invoices/{paid['id']}/cancel", headers=SHOP)
    assert refused.status == 422
    error = (await refused.json())["error"]
    assert (error["type"], error["code"]) == ("business_rule_error", "invalid_transition")


async def test_the_settlement_of_a_paid_invoice_shows_gross_fee_and_net(
    client: TestClient, world: MemoryWorld
) -> None:
    invoice = await (await create(client, {"amount": "9.99"})).json()
    before = await client.get(f"/api/v1/invoices/{invoice['id']}/settlement", headers=SHOP)
    assert before.status == 404
    assert (await before.json())["error"]["code"] == "settlement_not_found"

    await pay_in_full(world, invoice["id"], 9_990_000)
    paid = world.publisher.events[-1]
    command = settlement_command_for(paid)
    assert command is not None
    await world.services.settling.settle(command)

    response = await client.get(f"/api/v1/invoices/{invoice['id']}/settlement", headers=SHOP)
    assert response.status == 200
    settlement = await response.json()
    assert (
        settlement["gross_amount"],
        settlement["platform_fee_amount"],
        settlement["net_amount"],
        settlement["status"],
    ) == ("9.99", "0.1", "9.89", "completed")
    listed = await (await client.get("/api/v1/settlements", headers=SHOP)).json()
    assert [item["id"] for item in listed["data"]] == [settlement["id"]]
    one = await client.get(f"/api/v1/settlements/{settlement['id']}", headers=SHOP)
    assert (await one.json())["net_amount"] == "9.89"
    # Another merchant's invoice, and so its settlement, is not found (served by the owner).
    theirs = await client.get(f"/api/v1/invoices/{invoice['id']}/settlement", headers=OTHER)
    assert theirs.status == 404
    assert (await theirs.json())["error"]["code"] == "invoice_not_found"


async def settled_invoice(client: TestClient, world: MemoryWorld, amount: str) -> str:
    invoice = await (await create(client, {"amount": amount})).json()
    await pay_in_full(world, invoice["id"], int(Decimal(amount) * 1_000_000))
    command = settlement_command_for(world.publisher.events[-1])
    assert command is not None
    await world.services.settling.settle(command)
    return str(invoice["id"])


async def test_settlements_are_listed_page_by_page_with_filters(
    client: TestClient, world: MemoryWorld
) -> None:
    invoices = [await settled_invoice(client, world, amount) for amount in ("1", "2", "3")]

    seen: list[str] = []
    url = "/api/v1/settlements?limit=2"
    while True:
        page = await (await client.get(url, headers=SHOP)).json()
        seen += [item["invoice_id"] for item in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        url = f"/api/v1/settlements?limit=2&cursor={page['next_cursor']}"
    assert sorted(seen) == sorted(invoices) and len(seen) == 3

    one = await (
        await client.get(f"/api/v1/settlements?invoice_id={invoices[1]}", headers=SHOP)
    ).json()
    assert [item["gross_amount"] for item in one["data"]] == ["2"]
    failed = await (await client.get("/api/v1/settlements?status=failed", headers=SHOP)).json()
    assert failed["data"] == []
    assert (await (await client.get("/api/v1/settlements", headers=OTHER)).json())["data"] == []

    for query, param in [
        ("status=done", "status"),
        ("created_from=2024-01-01", "created_from"),
        ("created_from=2024-02-01T00:00:00Z&created_to=2024-01-01T00:00:00Z", "created_to"),
        ("cursor=bm90LWEtY3Vyc29y", "cursor"),
        ("sort=asc", "sort"),
    ]:
        response = await client.get(f"/api/v1/settlements?{query}", headers=SHOP)
        assert response.status == 400, query
        assert (await response.json())["error"]["param"] == param


async def test_an_agent_that_does_not_answer_in_time_is_a_503_to_retry(
    client: TestClient, world: MemoryWorld
) -> None:
    world.gateway.timeout = True
    response = await create(client, {"amount": "1"}, **{"Idempotency-Key": "k1"})
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert (await response.json())["error"]["code"] == "command_timeout"
    world.gateway.timeout = False
    retried = await create(client, {"amount": "1"}, **{"Idempotency-Key": "k1"})
    assert retried.status == 200  # the same command again: safe


async def test_the_invoice_list_is_the_merchants_own(
    client: TestClient, world: MemoryWorld
) -> None:
    response = await client.get("/api/v1/invoices?status=paid&limit=5", headers=SHOP)
    assert response.status == 200
    assert await response.json() == {"data": [], "has_more": False, "next_cursor": None}
    [(merchant_id, query)] = world.ports.invoice_summaries.asked  # type: ignore[attr-defined]
    assert (merchant_id, query.status, query.limit) == ("mer_shop", (InvoiceStatus.PAID,), 5)
    bad = await client.get("/api/v1/invoices?limit=500", headers=SHOP)
    assert bad.status == 400
    assert (await bad.json())["error"]["param"] == "limit"
