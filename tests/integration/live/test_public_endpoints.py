"""The customer endpoints on an aiohttp test server over the real Redis.

Events are applied with ``LiveInvoiceViews.apply`` (what the live status agent does), so the
WebSocket and SSE clients see what Redis pub/sub really delivers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.adapters.redis.live_views import LiveInvoiceViews
from tests.unit.live.scenario import Scenario
from web.errors import error_middleware
from web.public import LiveStreamSettings, PublicEndpoints, ViewFallback

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

FAST = LiveStreamSettings(heartbeat=5.0, keepalive=0.2, linger=0.3)


@contextlib.asynccontextmanager
async def serving(
    views: LiveInvoiceViews, fallback: ViewFallback | None = None
) -> AsyncIterator[TestClient]:
    app = web.Application(middlewares=[error_middleware])
    PublicEndpoints(views, fallback=fallback, settings=FAST).add_routes(app.router)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.fixture
async def client(views: LiveInvoiceViews) -> AsyncIterator[TestClient]:
    async with serving(views) as test_client:
        yield test_client


def keys_anywhere(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [k for key, inner in value.items() for k in (key, *keys_anywhere(inner))]
    if isinstance(value, list):
        return [k for inner in value for k in keys_anywhere(inner)]
    return []


async def apply_all(views: LiveInvoiceViews, events: list) -> None:
    for event in events:
        await views.apply(event)


async def test_the_json_view_and_404_in_the_one_error_shape(
    client: TestClient, views: LiveInvoiceViews, invoice_id: str
) -> None:
    scenario = Scenario(invoice_id=invoice_id, amount="9.99")
    await apply_all(views, scenario.events)
    response = await client.get(f"/api/v1/public/invoice/{invoice_id}")
    assert response.status == 200
    body = await response.json()
    assert (body["id"], body["status"], body["usdt_amount"], body["amount_due"]) == (
        invoice_id,
        "pending",
        "9.99",
        "9.99",
    )
    assert not [key for key in keys_anywhere(body) if "fee" in key]
    missing = await client.get("/api/v1/public/invoice/inv_nobody_here")
    assert missing.status == 404
    assert await missing.json() == {
        "error": {
            "type": "not_found_error",
            "code": "invoice_not_found",
            "message": "no invoice 'inv_nobody_here'",
            "param": "invoice_id",
        }
    }
    weird = await client.get("/api/v1/public/invoice/%3Cscript%3E")
    assert weird.status == 404


async def test_the_fallback_serves_what_redis_does_not_have_without_fees(
    views: LiveInvoiceViews, invoice_id: str
) -> None:
    async def from_table(wanted: str) -> dict[str, Any] | None:
        if wanted != invoice_id:
            return None
        return {"id": wanted, "status": "paid", "fee_percentage": "1", "nested": [{"fee": "1"}]}

    async with serving(views, from_table) as client:
        response = await client.get(f"/api/v1/public/invoice/{invoice_id}")
        assert response.status == 200
        assert await response.json() == {"id": invoice_id, "status": "paid", "nested": [{}]}


async def test_websocket_sends_the_current_view_then_each_change_and_closes_when_settled(
    client: TestClient, views: LiveInvoiceViews, invoice_id: str
) -> None:
    scenario = Scenario(invoice_id=invoice_id, amount="150")
    await views.apply(scenario.events[0])
    payment = scenario.pay("150")
    scenario.confirmations(payment, 6)
    scenario.confirmations(payment, 12)
    async with client.ws_connect(f"/api/v1/public/invoice/{invoice_id}/ws") as ws:
        first = orjson.loads((await ws.receive(timeout=5)).data)
        assert (first["status"], first["version"]) == ("pending", 1)
        await apply_all(views, scenario.events[1:])
        received = [first]
        async for message in ws:
            assert message.type == aiohttp.WSMsgType.TEXT
            received.append(orjson.loads(message.data))
        assert ws.close_code == 1000
    versions = [view["version"] for view in received]
    assert versions == sorted(set(versions))
    assert received[-1]["status"] == "paid"
    assert any(v["status"] == "confirming" and v["confirmations"] == 6 for v in received)
    assert received[-1] == await views.current(invoice_id)


async def test_websocket_for_an_unknown_invoice_is_404_before_the_upgrade(
    client: TestClient,
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/api/v1/public/invoice/inv_never_created/ws")
    assert refused.value.status == 404


async def read_sse(response: aiohttp.ClientResponse) -> list[tuple[str, str, str]]:
    """(event, id, data) of every event in the stream, and ("comment", "", text) for comments."""
    frames: list[tuple[str, str, str]] = []
    text = (await response.read()).decode()
    for block in text.split("\n\n"):
        if not block:
            continue
        fields = dict.fromkeys(("event", "id", "data"), "")
        for line in block.split("\n"):
            if line.startswith(":"):
                frames.append(("comment", "", line[1:].strip()))
            elif ": " in line:
                name, value = line.split(": ", 1)
                fields[name] = value
        if fields["event"] or fields["data"]:
            frames.append((fields["event"], fields["id"], fields["data"]))
    return frames


async def test_sse_streams_the_same_sequence_with_keep_alives_and_an_end(
    client: TestClient, views: LiveInvoiceViews, invoice_id: str
) -> None:
    scenario = Scenario(invoice_id=invoice_id, amount="9.99")
    await views.apply(scenario.events[0])
    scenario.pay("9.99")  # one confirmation is enough below 100 USDT

    async def pay_later() -> None:
        await asyncio.sleep(0.5)  # long enough for a keep-alive comment first
        await apply_all(views, scenario.events[1:])

    paying = asyncio.create_task(pay_later())
    response = await client.get(f"/api/v1/public/invoice/{invoice_id}/events")
    assert response.headers["Content-Type"].startswith("text/event-stream")
    frames = await read_sse(response)
    await paying
    events = [frame for frame in frames if frame[0] == "invoice"]
    assert events[0][1] == "1"
    assert orjson.loads(events[0][2])["status"] == "pending"
    assert orjson.loads(events[-1][2])["status"] == "paid"
    assert [int(frame[1]) for frame in events] == sorted({int(frame[1]) for frame in events})
    assert ("comment", "", "keep-alive") in frames
    assert frames[-1][0] == "end"

    # Reconnecting with the last id seen: nothing new, nothing to come → 204, EventSource stops.
    again = await client.get(
        f"/api/v1/public/invoice/{invoice_id}/events", headers={"Last-Event-ID": events[-1][1]}
    )
    assert again.status == 204


async def test_sse_honours_last_event_id(
    client: TestClient, views: LiveInvoiceViews, invoice_id: str
) -> None:
    scenario = Scenario(invoice_id=invoice_id, amount="150")
    scenario.pay("150")
    await apply_all(views, scenario.events)
    current = await views.current(invoice_id)
    assert current is not None and current["status"] == "confirming"
    scenario.confirmations(next(iter(scenario.payments)), 12)

    async def confirm_later() -> None:
        await asyncio.sleep(0.3)
        await apply_all(views, scenario.events)

    confirming = asyncio.create_task(confirm_later())
    response = await client.get(
        f"/api/v1/public/invoice/{invoice_id}/events",
        headers={"Last-Event-ID": str(current["version"])},
    )
    frames = [frame for frame in await read_sse(response) if frame[0] == "invoice"]
    await confirming
    # The view the client already had is not sent again; only what came after it.
    assert int(frames[0][1]) == current["version"] + 1
    assert orjson.loads(frames[-1][2])["status"] == "paid"


async def test_the_payment_page_shows_amount_address_and_qr_and_no_fee(
    client: TestClient, views: LiveInvoiceViews, invoice_id: str
) -> None:
    scenario = Scenario(invoice_id=invoice_id, amount="9.99")
    await apply_all(views, scenario.events)
    response = await client.get(f"/pay/{invoice_id}")
    assert response.status == 200
    page = await response.text()
    view = await views.current(invoice_id)
    assert view is not None
    assert ">9.99</output>" in page
    assert f">{view['deposit_address']}</output>" in page
    assert "<svg" in page
    # The invoice id is random hex: it may spell "fee" itself (inv_live_0fee05e6edbb did).
    assert "fee" not in page.replace(invoice_id, "").lower()
    assert "https://" not in page and "http://" not in page.replace("http://www.w3.org", "")
    assert "nonce-" in response.headers["Content-Security-Policy"]
    missing = await client.get("/pay/inv_never_created")
    assert missing.status == 404
    assert "Invoice not found" in await missing.text()
