"""Spans kept in memory: the SDK's ``InMemorySpanExporter`` behind app/adapters/telemetry.py.

``spans`` (a fixture; import it into a test module) turns tracing on for one test with a
synchronous exporter and off again after it. ``traceparent`` makes an incoming W3C header.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.adapters import telemetry

# A caller's context: trace 4bf9…4736, its span 00f0…02b7, sampled.
CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"


def traceparent(trace_id: str = CALLER_TRACE_ID, span_id: str = CALLER_SPAN_ID) -> str:
    return f"00-{trace_id}-{span_id}-01"


def parse_traceparent(header: str | bytes) -> tuple[str, str]:
    """(trace id, span id) of a ``traceparent`` header."""
    text = header.decode() if isinstance(header, bytes) else header
    version, trace_id, span_id, flags = text.split("-")
    assert version == "00" and int(flags, 16) & 1, f"not a sampled trace: {text}"
    return trace_id, span_id


def ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    assert context is not None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def parent_id(span: ReadableSpan) -> str | None:
    return None if span.parent is None else format(span.parent.span_id, "016x")


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.install_provider(provider)
    try:
        yield exporter
    finally:
        telemetry.install_provider(None)
        provider.shutdown()
