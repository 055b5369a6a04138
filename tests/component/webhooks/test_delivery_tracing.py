"""A webhook attempt is a CLIENT span in the trace its delivery's row kept; the merchant's server
never sees our trace context."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from app.adapters.postgres.webhook_store import ClaimedDelivery
from app.adapters.webhooks.dispatcher import DispatchSettings, WebhookDispatcher, WebhookSender
from app.adapters.webhooks.ssrf import UrlPolicy
from app.domain.webhooks import Attempt
from tests.support.tracing import (
    CALLER_SPAN_ID,
    CALLER_TRACE_ID,
    ids,
    parent_id,
    spans,
    traceparent,
)

pytestmark = pytest.mark.component

__all__ = ["spans"]  # the fixture

POLICY = UrlPolicy(require_https=False, allow_loopback=True)
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


@dataclass
class Store:
    """Hands out the deliveries once and records the attempts (PostgresWebhookStore's part)."""

    to_claim: list[ClaimedDelivery]
    recorded: list[tuple[str, bool]] = field(default_factory=list)

    async def claim_due(self, limit: int, *_: Any) -> list[ClaimedDelivery]:
        claimed, self.to_claim = self.to_claim, []
        return claimed

    async def release(self, delivery_ids: list[str]) -> None:
        assert not delivery_ids

    async def record_attempt(
        self, delivery: ClaimedDelivery, attempt: Attempt, *, succeeded: bool, retry_in: Any
    ) -> str:
        self.recorded.append((delivery.delivery_id, succeeded))
        return "succeeded" if succeeded else "pending"

    async def note_failure(self, endpoint_id: str, failed_at: Any) -> Any:
        return failed_at


@pytest.fixture
async def merchant() -> AsyncIterator[tuple[list[dict[str, str]], int]]:
    """The merchant's server: answers /ok with 204 and anything else with 500."""
    received: list[dict[str, str]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(dict(request.headers))
        return web.Response(status=204 if request.match_info["path"] == "ok" else 500)

    app = web.Application()
    app.router.add_post("/{path}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield received, port
    finally:
        await runner.cleanup()


def delivery(delivery_id: str, url: str, trace_context: str | None) -> ClaimedDelivery:
    return ClaimedDelivery(
        delivery_id=delivery_id,
        endpoint_id="we_1",
        merchant_id="mer_1",
        aggregate_id="inv_1",
        attempt=2,
        event=EVENT,
        url=url,
        secrets=("whsec_tracing",),
        origin="event",
        redelivery_of=None,
        trace_context=trace_context,
    )


async def dispatch(store: Store) -> None:
    settings = DispatchSettings(policy=POLICY, timeout=2.0)
    sender = WebhookSender(POLICY, settings.timeout, 4)
    await sender.start()
    try:
        dispatcher = WebhookDispatcher(
            store,  # type: ignore[arg-type]
            sender,
            settings,
            on_dead_letter=_never,
            on_disabled=_never,
        )
        await dispatcher.dispatch_once()
    finally:
        await sender.close()


async def _never(*_: Any) -> None:
    raise AssertionError("not expected here")


async def test_an_attempt_joins_the_trace_its_delivery_kept(
    merchant: tuple[list[dict[str, str]], int], spans: InMemorySpanExporter
) -> None:
    received, port = merchant
    store = Store([delivery("whd_ok", f"http://127.0.0.1:{port}/ok?token=s3cret", traceparent())])
    await dispatch(store)

    assert store.recorded == [("whd_ok", True)]
    [span] = spans.get_finished_spans()
    assert (span.name, span.kind) == ("webhook deliver", SpanKind.CLIENT)
    assert ids(span)[0] == CALLER_TRACE_ID and parent_id(span) == CALLER_SPAN_ID
    attributes = dict(span.attributes or {})
    assert attributes["url.full"] == f"http://127.0.0.1:{port}/ok"  # without its query
    assert attributes["http.response.status_code"] == 204
    assert (attributes["webhook.delivery_id"], attributes["webhook.attempt"]) == ("whd_ok", 2)
    assert span.status.status_code != StatusCode.ERROR
    [headers] = received
    assert not {"traceparent", "tracestate"} & {name.lower() for name in headers}


async def test_a_failed_attempt_is_an_error_span_and_a_delivery_without_context_a_new_trace(
    merchant: tuple[list[dict[str, str]], int], spans: InMemorySpanExporter
) -> None:
    _, port = merchant
    store = Store([delivery("whd_500", f"http://127.0.0.1:{port}/fail", None)])
    await dispatch(store)

    assert store.recorded == [("whd_500", False)]
    [span] = spans.get_finished_spans()
    assert span.parent is None
    assert (span.attributes or {})["http.response.status_code"] == 500
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "HTTP 500"
