"""One trace from ``POST /api/v1/invoices`` to the invoice's webhook, and JSON logs that name it.

A real worker exports its spans over OTLP/HTTP to a stand-in collector run by the test
(tests/support/otlp_collector.py); the client sends its own ``traceparent``, as a shop's system
or nginx may. The trace must hold, each with its parent in it: the request's SERVER span, the
invoice agent's CONSUMER span, the webhook fan-out's and the intake's, and the CLIENT span of each
attempt to deliver the invoice's webhook — made from PostgreSQL, seconds later.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.webhooks.conftest import WEBHOOK_TEST_SETTINGS
from tests.support.otlp_collector import OtlpCollector, ReceivedSpan, otlp_collector
from tests.support.platform import Platform, running_platform
from tests.support.processes import eventually
from tests.support.webhook_receiver import WebhookReceiver, webhook_receiver

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]


@pytest.fixture(scope="module")
def collector() -> Iterator[OtlpCollector]:
    with otlp_collector() as running:
        yield running


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, infrastructure: None, collector: OtlpCollector
) -> Iterator[Platform]:
    with running_platform(
        tmp_path_factory.mktemp("platform"),
        workers=1,
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_SERVICE_NAME="checkout-trace-test",
        LOG_FORMAT="json",
        **WEBHOOK_TEST_SETTINGS,
    ) as running:
        yield running


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, (name, [span.name for span in spans])
    return found[0]


def test_one_trace_from_the_invoice_request_to_its_webhook_and_logs_that_name_it(
    platform: Platform, collector: OtlpCollector, receiver: WebhookReceiver
) -> None:
    endpoint = httpx.post(
        f"{platform.url}/api/v1/webhook-endpoints",
        json={"url": receiver.url("/trace"), "event_types": ["InvoiceCreated"]},
        headers=platform.headers(),
        timeout=30,
    )
    assert endpoint.status_code == 201, endpoint.text
    receiver.status = 500  # the first attempt fails: a retry joins the same trace

    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    created = httpx.post(
        f"{platform.url}/api/v1/invoices",
        json={"amount": "9.99"},
        headers={
            **platform.headers(),
            "traceparent": f"00-{trace_id}-{caller_span}-01",
            "X-Request-Id": "trace-test-1",
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    assert created.headers["X-Request-Id"] == "trace-test-1"
    invoice_id = created.json()["id"]

    first = receiver.wait_for(lambda seen: len(seen) >= 1, "the first attempt", path="/trace")[0]
    receiver.status = 200
    assert first.json["aggregate_id"] == invoice_id
    assert not {"traceparent", "tracestate"} & {name.lower() for name in first.headers}
    delivery_id = first.headers["Checkout-Delivery-Id"]

    def whole_trace() -> list[ReceivedSpan] | None:
        spans = collector.trace(trace_id)
        delivered = any(
            span.name == "webhook deliver"
            and span.attributes.get("webhook.delivery_id") == delivery_id
            and span.attributes.get("http.response.status_code") == 200
            for span in spans
        )
        beside = {"projection_agent process", "live_status process"} <= {s.name for s in spans}
        return spans if delivered and beside else None

    spans = eventually(whole_trace, timeout=30, what=f"the spans of trace {trace_id}")
    by_id = {span.span_id: span for span in spans}
    server = one(spans, "POST /api/v1/invoices")
    assert (server.kind, server.parent_span_id) == ("SERVER", caller_span)
    assert server.attributes["http.route"] == "/api/v1/invoices"
    assert server.attributes["http.response.status_code"] == 201
    assert server.attributes["request.id"] == "trace-test-1"
    assert server.service == "checkout-trace-test"

    invoice_agent = one(spans, "invoice_agent process")
    assert invoice_agent.kind == "CONSUMER" and invoice_agent.parent_span_id == server.span_id
    # The other consumers of the same events are in the trace beside the fan-out.
    for name in ("projection_agent process", "live_status process"):
        assert any(s.name == name and s.parent_span_id == invoice_agent.span_id for s in spans)
    fan_out = one(spans, "webhook_agent process")
    assert fan_out.kind == "CONSUMER" and fan_out.parent_span_id == invoice_agent.span_id
    intake = one(spans, "delivery_intake_agent process")
    assert intake.kind == "CONSUMER" and intake.parent_span_id == fan_out.span_id
    attempts = sorted(
        (s for s in spans if s.name == "webhook deliver"),
        key=lambda s: int(s.attributes["webhook.attempt"]),
    )
    statuses = [s.attributes["http.response.status_code"] for s in attempts]
    assert statuses[0] == 500 and statuses[-1] == 200, statuses
    for attempt in attempts:
        assert attempt.kind == "CLIENT" and attempt.parent_span_id == intake.span_id
        assert attempt.attributes["url.full"] == receiver.url("/trace")
    # Every span of the trace but the caller's own has its parent in the trace.
    for span in spans:
        assert span is server or span.parent_span_id in by_id, (span.name, span.parent_span_id)

    # LOG_FORMAT=json: the worker's log lines are JSON objects; the failed attempt's names the
    # trace and the span of that attempt.
    lines = worker_log_lines(platform.workers[0].log_path)
    assert len(lines) > 10
    failed = [
        line
        for line in lines
        if line.get("trace_id") == trace_id and delivery_id in line["message"]
    ]
    assert failed, f"no log line of trace {trace_id} names {delivery_id}"
    assert failed[0]["logger"] == "app.adapters.webhooks.dispatcher"
    assert failed[0]["span_id"] == attempts[0].span_id
    assert "HTTP 500" in failed[0]["message"]


def worker_log_lines(path: Path) -> list[dict[str, Any]]:
    """The worker's log records; stdout's lines (Faust's banner) are beside them, not JSON."""
    records = []
    for text in path.read_text(errors="replace").splitlines():
        if text.startswith("{"):
            record = json.loads(text)  # a line that starts as JSON must be JSON
            assert {"ts", "level", "logger", "message"} <= set(record), record
            records.append(record)
    return records
