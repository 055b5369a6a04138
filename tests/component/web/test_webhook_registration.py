"""In production a webhook URL's host is resolved when it is registered, and refused if any of
its addresses is not public; the merchant is told so without the address."""

from __future__ import annotations

import socket

import pytest
from aiohttp.test_utils import TestClient

from app.settings import Settings
from tests.support.fakes import TEST_PEPPER, MemoryWorld, memory_world

from .conftest import SHOP

pytestmark = pytest.mark.component


@pytest.fixture
def world() -> MemoryWorld:
    return memory_world(Settings(environment="production", api_key_pepper=TEST_PEPPER))


def own_host_name() -> tuple[str, str]:
    """This machine's name and what it resolves to (/etc/hosts: loopback or a private address)."""
    name = socket.gethostname()
    try:
        return name, socket.gethostbyname(name)
    except OSError:
        pytest.skip(f"this machine's name {name!r} does not resolve")


async def test_a_name_resolving_inside_our_network_is_refused_without_its_address(
    client: TestClient,
) -> None:
    name, address = own_host_name()
    response = await client.post(
        "/api/v1/webhook-endpoints", json={"url": f"https://{name}/hooks"}, headers=SHOP
    )
    assert response.status == 400
    error = (await response.json())["error"]
    assert (error["code"], error["param"]) == ("url_not_allowed", "url")
    assert "private or reserved network" in error["message"]
    assert address not in error["message"]


async def test_a_name_that_does_not_resolve_is_refused(client: TestClient) -> None:
    response = await client.post(
        "/api/v1/webhook-endpoints",
        json={"url": "https://no-such-host.invalid/hooks"},
        headers=SHOP,
    )
    assert response.status == 400
    assert "does not resolve" in (await response.json())["error"]["message"]
