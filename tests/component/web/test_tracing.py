"""Each HTTP request is a SERVER span named by its route, continuing the caller's traceparent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.component.web.conftest import SHOP
from tests.support.tracing import (
    CALLER_SPAN_ID,
    CALLER_TRACE_ID,
    ids,
    named,
    parent_id,
    spans,
    traceparent,
)
from web import MIDDLEWARES

pytestmark = pytest.mark.component

__all__ = ["spans"]  # the fixture


async def test_creating_an_invoice_continues_the_callers_trace(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    response = await client.post(
        "/api/v1/invoices",
        json={"amount": "9.99"},
        headers={**SHOP, "traceparent": traceparent(), "X-Request-Id": "shop-order-42"},
    )
    assert response.status == 201
    assert response.headers["X-Request-Id"] == "shop-order-42"
    [span] = named(spans.get_finished_spans(), "POST /api/v1/invoices")
    assert span.kind == SpanKind.SERVER
    assert ids(span)[0] == CALLER_TRACE_ID and parent_id(span) == CALLER_SPAN_ID
    assert dict(span.attributes or {}) == {
        "http.request.method": "POST",
        "http.route": "/api/v1/invoices",
        "url.path": "/api/v1/invoices",
        "request.id": "shop-order-42",
        "http.response.status_code": 201,
    }


async def test_a_span_is_named_by_the_route_template_never_the_path(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    response = await client.get("/api/v1/invoices/inv_nope", headers=SHOP)
    assert response.status == 404
    [span] = spans.get_finished_spans()
    assert span.name == "GET /api/v1/invoices/{invoice_id}"
    assert span.parent is None  # no traceparent: a trace of its own
    assert (span.attributes or {})["http.response.status_code"] == 404


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("a bug")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "up"})


@pytest.fixture
async def bare() -> AsyncIterator[TestClient]:
    app = web.Application(middlewares=MIDDLEWARES)
    app.router.add_get("/boom", boom)
    app.router.add_get("/healthz", healthz)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_a_500_quotes_the_request_id_of_its_span_and_log(
    bare: TestClient, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    response = await bare.get("/boom")
    assert response.status == 500
    message = (await response.json())["error"]["message"]
    [span] = spans.get_finished_spans()
    request_id = (span.attributes or {})["request.id"]
    assert isinstance(request_id, str) and request_id.startswith("req_")
    assert f"quote {request_id} " in message
    assert span.status.status_code == StatusCode.ERROR
    assert any(request_id in entry.getMessage() for entry in caplog.records)


async def test_the_probes_are_not_traced(bare: TestClient, spans: InMemorySpanExporter) -> None:
    assert (await bare.get("/healthz", headers={"traceparent": traceparent()})).status == 200
    assert spans.get_finished_spans() == ()
