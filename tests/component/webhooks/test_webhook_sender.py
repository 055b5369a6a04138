"""One webhook attempt against a real aiohttp server: success, and every failure named."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from app.adapters.postgres.webhook_store import ClaimedDelivery
from app.adapters.webhooks.dispatcher import WebhookSender
from app.adapters.webhooks.signing import verify_signature
from app.adapters.webhooks.ssrf import BLOCKED_FOR_MERCHANTS, UrlPolicy

pytestmark = pytest.mark.component

LOOPBACK_ALLOWED = UrlPolicy(require_https=False, allow_loopback=True)
PRODUCTION = UrlPolicy(require_https=True, allow_loopback=False)
SECRET = "whsec_component_test"
EVENT = {
    "event_id": "0b9c5a3e-58a4-5f7e-9d7c-1f0e2a4b6c8d",
    "event_type": "InvoicePaid",
    "schema_version": 1,
    "aggregate_type": "invoice",
    "aggregate_id": "inv_1",
    "aggregate_version": 4,
    "merchant_id": "mer_1",
    "occurred_at": "2026-11-22T10:00:00Z",
    "data": {"amount": "9.99"},
}


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((dict(request.headers), await request.read()))
        behaviour = request.match_info["behaviour"]
        if behaviour == "ok":
            return web.Response(status=204)
        if behaviour == "redirect":
            raise web.HTTPFound("/ok")
        if behaviour == "slow":
            await asyncio.sleep(5)
            return web.Response(status=200)
        return web.Response(status=500, text="database is down")


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    state = Receiver()
    app = web.Application()
    app.router.add_post("/{behaviour}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield state, port
    finally:
        await runner.cleanup()


def delivery(url: str, **changes: Any) -> ClaimedDelivery:
    fields: dict[str, Any] = {
        "delivery_id": "whd_1",
        "endpoint_id": "we_1",
        "merchant_id": "mer_1",
        "aggregate_id": "inv_1",
        "attempt": 3,
        "event": EVENT,
        "url": url,
        "secrets": (SECRET,),
        "origin": "event",
        "redelivery_of": None,
    }
    return ClaimedDelivery(**{**fields, **changes})


async def attempt(
    url: str, policy: UrlPolicy = LOOPBACK_ALLOWED, request_timeout: float = 2.0
) -> Any:
    sender = WebhookSender(policy, request_timeout, 4)
    await sender.start()
    try:
        return await sender.attempt(delivery(url))
    finally:
        await sender.close()


async def test_a_2xx_is_a_success_and_the_request_is_signed(
    receiver: tuple[Receiver, int],
) -> None:
    state, port = receiver
    result = await attempt(f"http://127.0.0.1:{port}/ok")
    assert result.succeeded and result.attempt.status_code == 204 and result.attempt.error is None
    headers, body = state.requests[0]
    verify_signature(headers["Checkout-Signature"], body, SECRET, now=int(headers_time(headers)))
    assert headers["Checkout-Attempt"] == "3" and headers["Checkout-Delivery-Id"] == "whd_1"
    assert b'"attempt":3' in body


def headers_time(headers: dict[str, str]) -> str:
    return headers["Checkout-Signature"].split(",")[0].removeprefix("t=")


async def test_a_redirect_is_not_followed_and_fails(receiver: tuple[Receiver, int]) -> None:
    state, port = receiver
    result = await attempt(f"http://127.0.0.1:{port}/redirect")
    assert not result.succeeded and result.attempt.status_code == 302
    assert "redirects are not followed" in (result.attempt.error or "")
    assert len(state.requests) == 1  # /ok was never asked


async def test_a_500_fails_and_keeps_the_answer_for_the_merchant(
    receiver: tuple[Receiver, int],
) -> None:
    _, port = receiver
    result = await attempt(f"http://127.0.0.1:{port}/fail")
    assert not result.succeeded and result.attempt.error == "HTTP 500"
    assert result.attempt.response_excerpt == "database is down"


async def test_a_slow_server_times_out(receiver: tuple[Receiver, int]) -> None:
    _, port = receiver
    result = await attempt(f"http://127.0.0.1:{port}/slow", request_timeout=0.3)
    assert not result.succeeded and result.attempt.status_code is None
    assert result.attempt.error == "timed out after 0.3 s"


async def test_a_refused_connection_is_named() -> None:
    result = await attempt("http://127.0.0.1:1/nobody-listens")
    assert not result.succeeded
    assert (result.attempt.error or "").startswith("cannot connect")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "https://127.0.0.1/hook", "https://localhost/hook"]
)
async def test_production_never_calls_loopback(url: str, receiver: tuple[Receiver, int]) -> None:
    state, _ = receiver
    result = await attempt(url, policy=PRODUCTION)
    assert not result.succeeded and result.attempt.status_code is None
    error = result.attempt.error or ""
    # A blocked address is never named to the merchant (the operator's log has it).
    assert error == BLOCKED_FOR_MERCHANTS or error.startswith("unsafe address")
    assert "127.0.0.1" not in error
    assert state.requests == []
