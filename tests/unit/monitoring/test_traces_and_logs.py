"""Traces and logs: when tracing is on, how a context travels in headers, and the JSON log lines."""

from __future__ import annotations

import logging
import sys

import orjson
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.adapters import telemetry
from app.adapters.logs import JsonFormatter, json_logging_config
from app.settings import Settings, SettingsError
from tests.support.tracing import (
    CALLER_SPAN_ID,
    CALLER_TRACE_ID,
    ids,
    parent_id,
    parse_traceparent,
    spans,
    traceparent,
)

pytestmark = pytest.mark.unit

__all__ = ["spans"]  # the fixture


# --- on or off ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "exporter"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "Console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4318"}, None),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4318"}, None),
    ],
)
def test_tracing_is_off_unless_the_standard_variables_ask_for_it(
    environ: dict[str, str], exporter: str | None
) -> None:
    assert telemetry.tracing_exporter(environ) == exporter


def test_an_exporter_or_protocol_we_cannot_serve_is_refused_by_name() -> None:
    with pytest.raises(telemetry.TracingConfigError, match=r"^OTEL_TRACES_EXPORTER: "):
        telemetry.tracing_exporter({"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(telemetry.TracingConfigError, match=r"^OTEL_EXPORTER_OTLP_PROTOCOL: "):
        telemetry.configure_tracing(
            "http://w:6066",
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        )
    assert not telemetry.active()


def test_off_nothing_is_added_to_a_record() -> None:
    assert not telemetry.active()
    assert telemetry.inject_headers() is None
    assert telemetry.headers_for(traceparent()) is None
    assert telemetry.http_headers() == {}
    assert telemetry.current_traceparent() is None


# --- the context in Kafka headers -----------------------------------------------------------------


def test_a_span_travels_in_headers_and_continues_on_the_other_side(
    spans: InMemorySpanExporter,
) -> None:
    with telemetry.consumer_span("sender process", [("traceparent", traceparent().encode())]):
        headers = telemetry.inject_headers()
    assert headers is not None
    [(name, value)] = headers
    [sender] = spans.get_finished_spans()
    assert name == "traceparent" and parse_traceparent(value) == ids(sender)
    assert (ids(sender)[0], parent_id(sender)) == (CALLER_TRACE_ID, CALLER_SPAN_ID)

    # As Faust hands them over: a list of pairs or a mapping, bytes values, other headers beside.
    for received in (
        [("checkout-replay-of", b"t.dlq:0:1"), *headers],
        dict(headers),
        [("TraceParent", value)],
    ):
        with telemetry.consumer_span("receiver process", received):
            pass
        receiver = spans.get_finished_spans()[-1]
        assert ids(receiver)[0] == CALLER_TRACE_ID
        assert parent_id(receiver) == ids(sender)[1]


def test_junk_headers_start_a_new_trace(spans: InMemorySpanExporter) -> None:
    for junk in (None, [], [("traceparent", b"\xff\xfe")], [("traceparent", b"00-zz")], [b"x"]):
        with telemetry.consumer_span("receiver process", junk):
            pass
    for span in spans.get_finished_spans():
        assert span.parent is None and ids(span)[0] != CALLER_TRACE_ID


def test_a_stored_traceparent_is_the_parent_of_a_later_call(spans: InMemorySpanExporter) -> None:
    with telemetry.consumer_span("intake process", [("traceparent", traceparent().encode())]):
        stored = telemetry.current_traceparent()
    assert stored is not None
    with telemetry.client_span("webhook deliver", stored):
        pass
    intake, deliver = spans.get_finished_spans()
    assert ids(deliver)[0] == CALLER_TRACE_ID and parent_id(deliver) == ids(intake)[1]
    assert telemetry.headers_for(stored) == [("traceparent", stored.encode())]


# --- JSON log lines -------------------------------------------------------------------------------


def record(message: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord(
        "app.adapters.webhooks.dispatcher",
        logging.WARNING,
        __file__,
        1,
        message,
        args,
        exc_info,  # type: ignore[arg-type]
    )


def test_a_log_line_is_one_json_object_with_its_level_logger_and_message() -> None:
    line = JsonFormatter().format(record("webhook %s refused: %s", "whd_1", "private address"))
    assert "\n" not in line
    body = orjson.loads(line)
    assert body.pop("ts").endswith("Z")
    assert body == {
        "level": "WARNING",
        "logger": "app.adapters.webhooks.dispatcher",
        "message": "webhook whd_1 refused: private address",
    }


def test_a_log_line_names_its_trace_span_and_request(spans: InMemorySpanExporter) -> None:
    token = telemetry.set_request_id("req_0123456789abcdef")
    try:
        with telemetry.consumer_span("invoice_agent process", None):
            line = orjson.loads(JsonFormatter().format(record("applied")))
    finally:
        telemetry.reset_request_id(token)
    [span] = spans.get_finished_spans()
    assert (line["trace_id"], line["span_id"]) == ids(span)
    assert line["request_id"] == "req_0123456789abcdef"
    assert "request_id" not in orjson.loads(JsonFormatter().format(record("later")))


def test_a_traceback_is_kept_in_the_line() -> None:
    try:
        raise ValueError("no such endpoint")
    except ValueError:
        line = orjson.loads(JsonFormatter().format(record("failed", exc_info=sys.exc_info())))
    assert line["message"] == "failed"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert line["exception"].rstrip().endswith("ValueError: no such endpoint")


def test_the_worker_logging_config_writes_json_to_stderr() -> None:
    config = json_logging_config()
    assert config["merge"] is True  # into Faust's own (mode.utils.logging)
    handler = config["handlers"]["default"]
    assert handler["stream"] == "ext://sys.stderr"
    formatter = config["formatters"][handler["formatter"]]["()"]
    assert formatter == "app.adapters.logs.JsonFormatter"


def test_log_format_is_text_by_default_and_refused_by_name_when_unknown() -> None:
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(SettingsError, match=r"^LOG_FORMAT: "):
        Settings.from_env({"LOG_FORMAT": "logfmt"})
