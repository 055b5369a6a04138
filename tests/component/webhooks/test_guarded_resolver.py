"""The SSRF guard on a real aiohttp client: the delivery session cannot reach what it refuses.

A receiver listens on 127.0.0.1 and the client asks for ``localhost``, so the name goes through
the session's resolver exactly as a merchant's host name would at delivery time.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from app.adapters.webhooks.ssrf import (
    PRODUCTION_POLICY,
    BlockedAddress,
    GuardedResolver,
    UnsafeUrl,
    UrlPolicy,
    check_url_at_delivery,
    unsafe_url_cause,
)

pytestmark = pytest.mark.component

DEV = UrlPolicy(require_https=False, allow_loopback=True)
HTTP_NO_LOOPBACK = UrlPolicy(require_https=False, allow_loopback=False)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A merchant's webhook receiver on 127.0.0.1: its port and the bodies it received."""
    received: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port, received
    finally:
        await runner.cleanup()


def delivery_session(policy: UrlPolicy) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy), family=socket.AF_UNSPEC)
    return aiohttp.ClientSession(connector=connector, trust_env=False)


async def test_a_host_name_resolving_to_loopback_is_refused_before_connecting(
    receiver: tuple[int, list[bytes]],
) -> None:
    port, received = receiver

    async with delivery_session(HTTP_NO_LOOPBACK) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await session.post(f"http://localhost:{port}/hooks", data=b"{}")

    cause = unsafe_url_cause(caught.value)
    assert isinstance(cause, BlockedAddress)
    assert "loopback address" in str(cause)
    assert "loopback address" in str(caught.value)
    assert received == []


async def test_the_same_request_is_delivered_when_loopback_is_allowed(
    receiver: tuple[int, list[bytes]],
) -> None:
    port, received = receiver

    async with (
        delivery_session(DEV) as session,
        session.post(f"http://localhost:{port}/hooks", data=b'{"id":"evt_1"}') as response,
    ):
        status = response.status

    assert status == 204
    assert received == [b'{"id":"evt_1"}']


async def test_an_ip_literal_skips_the_resolver_so_the_delivery_check_refuses_it(
    receiver: tuple[int, list[bytes]],
) -> None:
    port, received = receiver
    url = f"http://127.0.0.1:{port}/hooks"

    with pytest.raises(UnsafeUrl, match="loopback address"):
        check_url_at_delivery(url, HTTP_NO_LOOPBACK)
    with pytest.raises(UnsafeUrl, match="https"):
        check_url_at_delivery(url, PRODUCTION_POLICY)
    # What the check guards against: aiohttp connects to a literal without asking the resolver.
    async with (
        delivery_session(HTTP_NO_LOOPBACK) as session,
        session.post(url, data=b"{}") as response,
    ):
        assert response.status == 204
    assert received == [b"{}"]
