"""Every answer of the public listener is counted and timed by its route's template."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from app.domain.errors import InvoiceNotFound
from web import MIDDLEWARES

pytestmark = pytest.mark.component

SECONDS = "checkout_http_request_duration_seconds_count"
RESPONSES = "checkout_http_responses_total"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def thing(request: web.Request) -> web.Response:
    return web.json_response({"id": request.match_info["thing_id"]})


async def missing(request: web.Request) -> web.Response:
    raise InvoiceNotFound("no such invoice", param="invoice_id")


async def moved(request: web.Request) -> web.Response:
    raise web.HTTPFound("/metrics-test/things/1")


async def stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b"a,b\n")
    await response.write_eof()
    return response


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    app = web.Application(middlewares=MIDDLEWARES)
    app.router.add_get("/metrics-test/things/{thing_id}", thing)
    app.router.add_get("/metrics-test/missing", missing)
    app.router.add_get("/metrics-test/moved", moved)
    app.router.add_get("/metrics-test/export.csv", stream)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_requests_are_timed_by_route_template_never_by_path(client: TestClient) -> None:
    route = "/metrics-test/things/{thing_id}"
    before = value(SECONDS, method="GET", route=route)
    for n in range(3):
        assert (await client.get(f"/metrics-test/things/thing_{n}")).status == 200
    assert value(SECONDS, method="GET", route=route) == before + 3
    paths = {
        sample.labels.get("route")
        for family in REGISTRY.collect()
        if family.name.startswith("checkout_http_")
        for sample in family.samples
    }
    assert not any(path and "thing_1" in path for path in paths)


async def test_errors_redirects_and_unknown_paths_are_counted_by_status_class(
    client: TestClient,
) -> None:
    before = {
        "4xx": value(RESPONSES, method="GET", route="/metrics-test/missing", status="4xx"),
        "3xx": value(RESPONSES, method="GET", route="/metrics-test/moved", status="3xx"),
        "unmatched": value(RESPONSES, method="GET", route="unmatched", status="4xx"),
    }
    assert (await client.get("/metrics-test/missing")).status == 404
    assert (await client.get("/metrics-test/moved", allow_redirects=False)).status == 302
    assert (await client.get("/metrics-test/nothing/here/inv_123")).status == 404

    assert value(RESPONSES, method="GET", route="/metrics-test/missing", status="4xx") == (
        before["4xx"] + 1
    )
    assert value(RESPONSES, method="GET", route="/metrics-test/moved", status="3xx") == (
        before["3xx"] + 1
    )
    assert value(RESPONSES, method="GET", route="unmatched", status="4xx") == (
        before["unmatched"] + 1
    )


async def test_a_stream_is_counted_but_not_timed(client: TestClient) -> None:
    route = "/metrics-test/export.csv"
    timed = value(SECONDS, method="GET", route=route)
    answered = value(RESPONSES, method="GET", route=route, status="2xx")
    response = await client.get(route)
    assert response.status == 200 and await response.text() == "a,b\n"
    assert value(SECONDS, method="GET", route=route) == timed
    assert value(RESPONSES, method="GET", route=route, status="2xx") == answered + 1
