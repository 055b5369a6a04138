"""nginx in front of two real workers, configured as ``make up`` and docker-compose.yml configure it
(docker/nginx/, docs/load-balancer.md): TLS 1.3 only, requests spread over both workers,
WebSocket and SSE unbuffered, X-Forwarded-For for the edge, a dead worker skipped.

The workers trust 127.0.0.1/32 (nginx) as a proxy, as ``make up`` sets them. The last test kills
a worker: it stays last.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import orjson
import pytest

from tests.support.nginx import LoadBalancer, load_balancer
from tests.support.platform import Platform, running_platform
from tests.support.processes import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(
        tmp_path_factory.mktemp("lb-platform"), TRUSTED_PROXIES="127.0.0.1/32"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def balancer(
    platform: Platform, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoadBalancer]:
    upstreams = [url.removeprefix("http://") for url in platform.worker_urls]
    with load_balancer(upstreams, tmp_path_factory.mktemp("nginx")) as running:
        yield running


@pytest.fixture(scope="module")
def live_invoice(platform: Platform, balancer: LoadBalancer) -> dict[str, Any]:
    """A pending invoice whose live view is in Redis (what WebSocket and SSE serve)."""
    invoice = platform.create_invoice("7.5")
    with balancer.client() as client:
        eventually(
            lambda: client.get(f"/api/v1/public/invoice/{invoice['id']}").status_code == 200,
            timeout=60,
            what=f"the live view of {invoice['id']}",
        )
    return invoice


def request_id(what: str) -> str:
    return f"lb-{what}-{uuid.uuid4().hex[:12]}"


def handshake(balancer: LoadBalancer, context: ssl.SSLContext, host: str = "localhost") -> str:
    with (
        socket.create_connection(("127.0.0.1", balancer.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return str(tls.version())


def test_only_tls_1_3_is_spoken_and_plain_http_redirects(balancer: LoadBalancer) -> None:
    assert handshake(balancer, balancer.ssl_context()) == "TLSv1.3"
    assert handshake(balancer, balancer.ssl_context(), host="127.0.0.1") == "TLSv1.3"
    old = balancer.ssl_context()
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        handshake(balancer, old)
    plain = httpx.get(f"http://127.0.0.1:{balancer.http_port}/pay/inv_x?a=1", timeout=10)
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"https://127.0.0.1:{balancer.port}/pay/inv_x?a=1"


def test_an_invoice_is_created_and_read_through_it_and_requests_reach_both_workers(
    platform: Platform, balancer: LoadBalancer
) -> None:
    with balancer.client(headers=platform.headers()) as client:
        created = client.post("/api/v1/invoices", json={"amount": "9.99", "order_id": "lb-1"})
        assert created.status_code == 201, created.text
        invoice = created.json()
        assert created.headers["Strict-Transport-Security"] == "max-age=0"
        ids = [request_id("spread") for _ in range(8)]
        for rid in ids:
            read = client.get(f"/api/v1/invoices/{invoice['id']}", headers={"X-Request-Id": rid})
            assert read.status_code == 200, read.text
            assert read.json()["id"] == invoice["id"]
            assert read.headers["X-Request-Id"] == rid  # passed through to the worker and back
        # No id of the client's own: nginx's $request_id, which the worker records and answers.
        anonymous = client.get(f"/api/v1/invoices/{invoice['id']}")
    answered = {balancer.entry(rid).upstreams[-1] for rid in ids}
    workers = {url.removeprefix("http://") for url in platform.worker_urls}
    assert answered == workers
    generated = anonymous.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated), generated
    assert balancer.entry(generated).status == 200


def test_bodies_over_the_workers_limit_are_refused_in_the_api_shape(
    platform: Platform, balancer: LoadBalancer
) -> None:
    with balancer.client(headers=platform.headers()) as client:
        too_big = client.post(
            "/api/v1/invoices",
            content=b'{"amount": "1", "metadata": "' + b"x" * 70_000 + b'"}',
            headers={"Content-Type": "application/json"},
        )
        internal = client.get("/internal/anything")
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "body_too_large"
    assert internal.status_code == 404  # workers talk to each other directly, not through nginx


async def test_the_payment_page_websocket_gets_the_current_status_through_it(
    balancer: LoadBalancer, live_invoice: dict[str, Any]
) -> None:
    url = f"wss://localhost:{balancer.port}/api/v1/public/invoice/{live_invoice['id']}/ws"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, ssl=balancer.ssl_context()) as ws,
    ):
        message = await ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        view = orjson.loads(message.data)
        assert (view["id"], view["status"]) == (live_invoice["id"], "pending")


def test_server_sent_events_arrive_at_once_not_buffered(
    balancer: LoadBalancer, live_invoice: dict[str, Any]
) -> None:
    path = f"/api/v1/public/invoice/{live_invoice['id']}/events"
    started = time.monotonic()
    event: list[str] = []
    # The stream stays open (the invoice is pending): a buffering proxy would sit on the first
    # event until its buffer filled or the stream ended, long after this read timeout.
    with (
        balancer.client() as client,
        client.stream("GET", path, headers={"Accept": "text/event-stream"}, timeout=5) as response,
    ):
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: invoice") or event:
                event.append(line)
            if event and line.startswith("data: "):
                break
    assert time.monotonic() - started < 5
    assert orjson.loads(event[-1].removeprefix("data: "))["id"] == live_invoice["id"]


def test_the_edge_sees_the_client_address_nginx_appended(
    platform: Platform, balancer: LoadBalancer
) -> None:
    """The audit log records the client's address: from another loopback address, the one nginx
    saw (whatever the client wrote into X-Forwarded-For); from 127.0.0.1, a trusted proxy like
    nginx itself, the address that proxy forwarded."""
    forged, direct = request_id("xff-forged"), request_id("xff-trusted")
    outside = httpx.HTTPTransport(verify=balancer.ssl_context(), local_address="127.0.0.2")
    with httpx.Client(base_url=balancer.url, transport=outside, timeout=30) as client:
        answer = client.post(
            "/api/v1/invoices",
            json={"amount": "1"},
            headers={
                **platform.headers(),
                "X-Forwarded-For": "203.0.113.7",
                "X-Request-Id": forged,
            },
        )
        assert answer.status_code == 201, answer.text
    with balancer.client() as client:
        answer = client.post(
            "/api/v1/invoices",
            json={"amount": "1"},
            headers={
                **platform.headers(),
                "X-Forwarded-For": "198.51.100.23",
                "X-Request-Id": direct,
            },
        )
        assert answer.status_code == 201, answer.text
        audit = audit_entries(client, platform)
    assert balancer.entry(forged).client == "127.0.0.2"
    assert audit[forged]["client_address"] == "127.0.0.2"
    assert audit[direct]["client_address"] == "198.51.100.23"


def audit_entries(client: httpx.Client, platform: Platform) -> dict[str, dict[str, Any]]:
    by_request: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params = {"limit": "100", **({"starting_after": cursor} if cursor else {})}
        page = client.get("/api/v1/audit-log", params=params, headers=platform.headers())
        assert page.status_code == 200, page.text
        body = page.json()
        by_request.update({entry["request_id"]: entry for entry in body["data"]})
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return by_request


def test_a_dead_worker_is_skipped_and_the_other_answers(
    platform: Platform, balancer: LoadBalancer, live_invoice: dict[str, Any]
) -> None:
    """Last in this module: it kills a worker. Passive health checks: the first request that
    finds the worker gone is passed to the other one, and the dead one is left alone after."""
    dead, alive = platform.workers[1], platform.workers[0]
    dead.kill()
    ids = [request_id("failover") for _ in range(20)]
    with balancer.client() as client:
        for number, rid in enumerate(ids):
            # The live view comes from Redis, /healthz from the process: neither needs the dead
            # worker's partitions, so every answer here is the load balancer's doing.
            path = f"/api/v1/public/invoice/{live_invoice['id']}" if number % 2 else "/healthz"
            answer = client.get(path, headers={"X-Request-Id": rid})
            assert answer.status_code == 200, (path, answer.text, balancer.log_tail())
    entries = [balancer.entry(rid) for rid in ids]
    survivor, gone = (w.url.removeprefix("http://") for w in (alive, dead))
    assert {entry.upstreams[-1] for entry in entries} == {survivor}
    tried_dead = [entry for entry in entries if gone in entry.upstreams]
    assert len(tried_dead) <= 1, tried_dead  # max_fails=1: left alone after its first failure
