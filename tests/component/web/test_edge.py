"""The edge on a real aiohttp server: worker-only requests need a worker's signature, and every
request knows its client's address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from ipaddress import ip_network

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from app.bootstrap import install_views
from app.runtime.worker_signatures import ROUTED_FROM, WorkerSignatures
from app.settings import Settings
from tests.support.fakes import LocalRouting, MemoryWorld
from web import MIDDLEWARES
from web.edge import ClientAddresses, EdgeGuard, client_address, from_worker

pytestmark = pytest.mark.component

SIGNATURES = WorkerSignatures("w" * 32)
INTERNAL = "/internal/v1/invoices/inv_missing/public-view"


async def who(request: web.Request) -> web.Response:
    return web.json_response(
        {"client": client_address(request), "from_worker": from_worker(request)}
    )


@pytest.fixture
async def edge_client(world: MemoryWorld) -> AsyncIterator[TestClient]:
    edge = EdgeGuard(SIGNATURES, ClientAddresses([ip_network("127.0.0.0/8")]))
    app = web.Application(middlewares=(*MIDDLEWARES, edge.middleware))
    install_views(app, world.services, LocalRouting(), Settings())
    app.router.add_get("/api/v1/who", who)
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_internal_routes_refuse_requests_without_a_workers_signature(
    edge_client: TestClient,
) -> None:
    response = await edge_client.get(INTERNAL)
    assert response.status == 401
    error = (await response.json())["error"]
    assert error["code"] == "invalid_worker_signature"
    assert "missing" in error["message"]


async def test_a_signed_internal_request_reaches_its_view(edge_client: TestClient) -> None:
    headers = SIGNATURES.headers(
        "GET", INTERNAL, b"", routed_from="http://127.0.0.1:1", client_address="worker"
    )
    response = await edge_client.get(INTERNAL, headers=headers)
    assert response.status == 404  # past the guard: the view says the invoice is not here
    assert (await response.json())["error"]["code"] == "invoice_not_found"


async def test_a_client_cannot_pretend_to_be_a_worker(edge_client: TestClient) -> None:
    # A forged "already forwarded" header would skip the rate limits: it is refused instead.
    response = await edge_client.get("/api/v1/who", headers={ROUTED_FROM: "http://127.0.0.1:1"})
    assert response.status == 401


async def test_a_signed_forward_carries_the_original_clients_address(
    edge_client: TestClient,
) -> None:
    headers = SIGNATURES.headers(
        "GET", "/api/v1/who", b"", routed_from="http://10.0.0.2:6066", client_address="198.51.100.7"
    )
    response = await edge_client.get("/api/v1/who", headers=headers)
    assert await response.json() == {"client": "198.51.100.7", "from_worker": True}


async def test_the_client_address_comes_from_a_trusted_proxy_only(
    edge_client: TestClient,
) -> None:
    # The test client connects from 127.0.0.1, trusted here: its X-Forwarded-For is believed.
    forwarded = await edge_client.get(
        "/api/v1/who", headers={"X-Forwarded-For": "1.2.3.4, 198.51.100.7"}
    )
    assert await forwarded.json() == {"client": "198.51.100.7", "from_worker": False}
    direct = await edge_client.get("/api/v1/who")
    assert (await direct.json())["client"] == "127.0.0.1"


async def test_every_forwarded_for_line_is_read(edge_client: TestClient) -> None:
    # A client writes its own line; the trusted proxy adds another line (not appended).
    headers = [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.7")]
    response = await edge_client.get("/api/v1/who", headers=CIMultiDict(headers))
    assert (await response.json())["client"] == "198.51.100.7"


async def test_a_non_ascii_worker_timestamp_is_a_401(edge_client: TestClient) -> None:
    headers = SIGNATURES.headers(
        "GET", "/api/v1/who", b"", routed_from="http://10.0.0.2:6066", client_address="1.2.3.4"
    )
    headers["X-Checkout-Timestamp"] = "²"
    response = await edge_client.get(
        "/api/v1/who", headers={k: v.encode().decode("latin-1") for k, v in headers.items()}
    )
    assert response.status == 401
