"""The customer's endpoints on aiohttp's test client: the view, its stream, the payment page."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from ipaddress import ip_network
from typing import Any

import orjson
import pytest
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from app.bootstrap import install_views
from app.runtime.worker_signatures import WorkerSignatures
from app.settings import Settings
from tests.support.fakes import LocalRouting, MemoryWorld
from tests.unit.live.scenario import Scenario
from web import MIDDLEWARES
from web.edge import ClientAddresses, EdgeGuard

from .conftest import FAST, SHOP

pytestmark = pytest.mark.component


def keys_anywhere(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [k for key, inner in value.items() for k in (key, *keys_anywhere(inner))]
    if isinstance(value, list):
        return [k for inner in value for k in keys_anywhere(inner)]
    return []


async def test_the_public_view_has_no_fee_and_an_unknown_invoice_is_a_404(
    client: TestClient, world: MemoryWorld
) -> None:
    scenario = Scenario(invoice_id="inv_pub_1", amount="9.99")
    for event in scenario.events:
        await world.live_views.apply(event)
    response = await client.get("/api/v1/public/invoice/inv_pub_1")
    assert response.status == 200
    view = await response.json()
    assert (view["status"], view["usdt_amount"], view["currency"]) == ("pending", "9.99", "USDT")
    assert not [key for key in keys_anywhere(view) if "fee" in key]
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    missing = await client.get("/api/v1/public/invoice/inv_nobody")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "invoice_not_found"


async def test_without_a_live_view_the_invoice_history_answers(
    client: TestClient, world: MemoryWorld
) -> None:
    created = await client.post("/api/v1/invoices", json={"amount": "12.5"}, headers=SHOP)
    invoice_id = (await created.json())["id"]
    assert world.live_views.states == {}  # the live agent has not seen it (or Redis forgot)
    response = await client.get(f"/api/v1/public/invoice/{invoice_id}")
    assert response.status == 200
    view = await response.json()
    assert (view["id"], view["status"], view["amount_due"]) == (invoice_id, "pending", "12.5")
    assert "version" not in view  # any live change replaces it
    assert not [key for key in keys_anywhere(view) if "fee" in key]


async def test_redis_down_with_no_fallback_view_is_a_503(
    client: TestClient, world: MemoryWorld
) -> None:
    world.live_views.down = True
    response = await client.get("/api/v1/public/invoice/inv_unknown_1")
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "live_status_unavailable"
    page = await client.get("/pay/inv_unknown_1")
    assert page.status == 503


async def test_the_websocket_sends_the_view_then_each_change(
    client: TestClient, world: MemoryWorld
) -> None:
    scenario = Scenario(invoice_id="inv_ws_1", amount="9.99")
    await world.live_views.apply(scenario.events[0])
    payment = scenario.pay("9.99")
    async with client.ws_connect("/api/v1/public/invoice/inv_ws_1/ws") as ws:
        first = orjson.loads((await ws.receive(timeout=5)).data)
        assert (first["status"], first["version"]) == ("pending", 1)
        for event in scenario.events[1:]:
            await world.live_views.apply(event)
        views = []
        while not views or views[-1]["status"] != "paid":
            views.append(orjson.loads((await ws.receive(timeout=5)).data))
        assert [view["version"] for view in views] == list(range(2, len(views) + 2))
        [paid_with] = views[-1]["payments"]
        assert (paid_with["payment_id"], paid_with["status"]) == (payment, "confirmed")


async def test_the_payment_page_is_served_with_a_strict_content_security_policy(
    client: TestClient, world: MemoryWorld
) -> None:
    scenario = Scenario(invoice_id="inv_page_1", amount="9.99")
    await world.live_views.apply(scenario.events[0])
    page = await client.get("/pay/inv_page_1")
    assert page.status == 200
    html = await page.text()
    assert "inv_page_1" in html and "9.99" in html
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert (await client.get("/pay/inv_nobody_1")).status == 404


@pytest.fixture
async def capped(world: MemoryWorld) -> AsyncIterator[TestClient]:
    """A worker keeping 3 live streams at most, 2 per address; the test client is a trusted
    proxy, so each request says its address in X-Forwarded-For."""
    edge = EdgeGuard(WorkerSignatures("w" * 32), ClientAddresses([ip_network("127.0.0.0/8")]))
    app = web.Application(middlewares=(*MIDDLEWARES, edge.middleware))
    caps = replace(FAST, linger=30.0, per_worker=3, per_address=2)
    install_views(app, world.services, LocalRouting(), Settings(), live=caps)
    scenario = Scenario(invoice_id="inv_cap_1", amount="9.99")
    await world.live_views.apply(scenario.events[0])
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def by(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def test_live_streams_are_capped_per_address_and_per_worker(capped: TestClient) -> None:
    url = "/api/v1/public/invoice/inv_cap_1"
    async with contextlib.AsyncExitStack() as open_streams:
        for _ in range(2):
            ws = await open_streams.enter_async_context(
                capped.ws_connect(f"{url}/ws", headers=by("198.51.100.1"))
            )
            assert (await ws.receive(timeout=5)).type == WSMsgType.TEXT
        # A third from the same address: accepted, then closed with 1013 and why.
        async with capped.ws_connect(f"{url}/ws", headers=by("198.51.100.1")) as third:
            closing = await third.receive(timeout=5)
            assert closing.type == WSMsgType.CLOSE
            assert closing.data == 1013
            assert "from your address" in closing.extra
        sse = await capped.get(f"{url}/events", headers=by("198.51.100.1"))
        assert sse.status == 429
        assert sse.headers["Retry-After"] == "30"
        assert (await sse.json())["error"]["code"] == "too_many_live_streams"
        # Another address still gets one, until the worker's own cap of 3.
        ws = await open_streams.enter_async_context(
            capped.ws_connect(f"{url}/ws", headers=by("198.51.100.2"))
        )
        assert (await ws.receive(timeout=5)).type == WSMsgType.TEXT
        async with capped.ws_connect(f"{url}/ws", headers=by("198.51.100.3")) as fourth:
            closing = await fourth.receive(timeout=5)
            assert (closing.data, "too many live streams" in closing.extra) == (1013, True)
    # All closed: the slots are free again.
    async with capped.ws_connect(f"{url}/ws", headers=by("198.51.100.1")) as again:
        assert (await again.receive(timeout=5)).type == WSMsgType.TEXT


async def test_a_websocket_message_over_64_kib_closes_the_stream(capped: TestClient) -> None:
    async with capped.ws_connect("/api/v1/public/invoice/inv_cap_1/ws") as ws:
        await ws.receive(timeout=5)
        await ws.send_str("x" * (64 * 1024 + 1))
        closing = await ws.receive(timeout=5)
        assert closing.type == WSMsgType.CLOSE
        assert closing.data == WSCloseCode.MESSAGE_TOO_BIG


async def test_the_shop_links_are_kept_as_given_and_filled_in_for_the_customer(
    client: TestClient,
) -> None:
    body = {
        "amount": "5",
        "order_id": "A/7 & co",
        "redirect_url": "https://shop.example/orders/{order_id}/thanks?invoice={invoice_id}",
        "cancel_url": "https://shop.example/cart",
    }
    created = await client.post("/api/v1/invoices", json=body, headers=SHOP)
    assert created.status == 201, await created.text()
    invoice = await created.json()
    assert invoice["redirect_url"] == body["redirect_url"]  # the merchant sees the template
    view = await (await client.get(f"/api/v1/public/invoice/{invoice['id']}")).json()
    assert view["redirect_url"] == (
        f"https://shop.example/orders/A%2F7%20%26%20co/thanks?invoice={invoice['id']}"
    )
    assert view["cancel_url"] == "https://shop.example/cart"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://shop.example/x",
        "/relative/thanks",
        "https://",
        "https://shop.example/{customer}",
        "https://shop.example/\u0000",
        "https://shop.example/" + "a" * 2048,
        "javascript:alert(1)",
    ],
)
async def test_a_shop_link_that_is_not_an_absolute_web_url_is_a_400(
    client: TestClient, url: str
) -> None:
    for field in ("redirect_url", "cancel_url"):
        answer = await client.post(
            "/api/v1/invoices", json={"amount": "5", field: url}, headers=SHOP
        )
        assert answer.status == 400, url
        assert (await answer.json())["error"]["param"] == field
