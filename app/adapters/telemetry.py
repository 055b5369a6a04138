"""Traces: OpenTelemetry spans, exported over OTLP/HTTP when the standard ``OTEL_*`` ask for it.

Off by default. ``configure_tracing`` turns it on when ``OTEL_TRACES_EXPORTER`` is ``otlp`` (or
``console``), or when ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is
set, unless ``OTEL_SDK_DISABLED=true``; the SDK reads the rest itself (the endpoint, headers,
``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``, ``OTEL_RESOURCE_ATTRIBUTES``). While it is off every
helper here is a test of one module global: the money agents' hot path pays nothing more.

The context travels as W3C Trace Context: a ``traceparent`` (and ``tracestate``) header on each
Kafka record the platform sends and on a request forwarded to another worker, and as text in a
webhook delivery's row (``webhook_deliveries.trace_context``) until the dispatcher sends it. It is
never sent to a merchant's server.

The request id of the HTTP request being served (web/tracing.py) is kept here too, for the logs
(app/adapters/logs.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

DEFAULT_SERVICE_NAME: Final = "crypto-checkout"
TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
_INSTRUMENTATION: Final = "crypto-checkout"
_EXPORTERS: Final = frozenset({"otlp", "console"})

# W3C Trace Context only, whatever OTEL_PROPAGATORS says: what we write is what we read.
_PROPAGATOR: Final = TraceContextTextMapPropagator()

# None while tracing is off: the one thing the hot paths look at.
_tracer: Tracer | None = None

_request_id: ContextVar[str | None] = ContextVar("checkout_request_id", default=None)


class TracingConfigError(ValueError):
    """An ``OTEL_*`` variable asks for something this platform cannot do; it is named."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


# --- turning it on --------------------------------------------------------------------------------


def tracing_exporter(environ: Mapping[str, str]) -> str | None:
    """``otlp``, ``console`` or None (off), as the standard variables say."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = {
        name.strip().lower()
        for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",")
        if name.strip()
    }
    if not names:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return "otlp" if endpoint else None
    if names == {"none"}:
        return None
    unknown = names - _EXPORTERS
    if unknown or len(names) > 1:
        raise TracingConfigError(
            "OTEL_TRACES_EXPORTER", f"one of otlp, console or none, not {','.join(sorted(names))}"
        )
    return names.pop()


def _check_protocol(environ: Mapping[str, str]) -> None:
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = environ.get(variable, "").strip()
        if protocol:
            if protocol != "http/protobuf":
                raise TracingConfigError(variable, f"only http/protobuf is supported: {protocol}")
            return


def configure_tracing(instance_id: str, environ: Mapping[str, str] | None = None) -> bool:
    """Export this process's spans when the ``OTEL_*`` variables ask for it; True when on.

    ``instance_id`` tells this process from the others of the service (a worker's URL).
    """
    env = os.environ if environ is None else environ
    exporter_name = tracing_exporter(env)
    if exporter_name is None:
        return False
    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    else:
        _check_protocol(env)
        # Imported here: the exporter pulls in requests and protobuf, needed only when on.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # endpoint, headers, timeout: OTEL_EXPORTER_OTLP_*
    resource = Resource.create(
        {
            SERVICE_NAME: env.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME,
            SERVICE_INSTANCE_ID: instance_id,
        }
    )
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    install_provider(provider)
    return True


def install_provider(provider: trace.TracerProvider | None) -> None:
    """Trace with ``provider`` from now on (tests: an in-memory exporter); None turns it off."""
    global _tracer
    _tracer = None if provider is None else provider.get_tracer(_INSTRUMENTATION)


def active() -> bool:
    return _tracer is not None


# --- carrying the context -------------------------------------------------------------------------


def _current_carrier() -> dict[str, str]:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def inject_headers() -> list[tuple[str, bytes]] | None:
    """The current trace context as one record's Kafka headers (a new list each time: Faust may
    add to it); None when there is none or tracing is off (Faust sends no headers then)."""
    if _tracer is None:
        return None
    carrier = _current_carrier()
    return [(name, value.encode()) for name, value in carrier.items()] or None


def headers_for(traceparent: str | None) -> list[tuple[str, bytes]] | None:
    """Kafka headers carrying ``traceparent`` if given, else the current context's."""
    if _tracer is None:
        return None
    if traceparent:
        return [(TRACEPARENT, traceparent.encode())]
    return inject_headers()


def http_headers() -> dict[str, str]:
    """The current trace context as HTTP headers (a request forwarded to another worker)."""
    return {} if _tracer is None else _current_carrier()


def _text(value: object) -> str | None:
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def context_from_headers(headers: object) -> Context:
    """The trace context of a Kafka record's headers (pairs or a mapping, bytes values)."""
    carrier: dict[str, str] = {}
    pairs: Any = headers.items() if isinstance(headers, Mapping) else (headers or ())
    for pair in pairs:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            continue
        name, value = _text(pair[0]), _text(pair[1])
        if name is not None and value is not None and name.lower() in (TRACEPARENT, TRACESTATE):
            carrier[name.lower()] = value
    return _PROPAGATOR.extract(carrier)


def context_from_traceparent(traceparent: str | None) -> Context:
    """The context of a stored ``traceparent``; an empty one (a new trace) without it."""
    return _PROPAGATOR.extract({TRACEPARENT: traceparent} if traceparent else {})


def traceparent_of(span: Span) -> str | None:
    """``span``'s context as a ``traceparent`` string, to travel where headers cannot."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get(TRACEPARENT)


def current_traceparent() -> str | None:
    return None if _tracer is None else _current_carrier().get(TRACEPARENT)


def trace_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, for the logs; None outside a trace."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


# --- spans ----------------------------------------------------------------------------------------


def record_attributes(topic: str, partition: int, offset: int) -> dict[str, str | int]:
    """What a span processing one Kafka record says of it."""
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": topic,
        "messaging.kafka.partition": partition,
        "messaging.kafka.offset": offset,
    }


@contextmanager
def consumer_span(name: str, headers: object, attributes: Attributes = None) -> Iterator[Span]:
    """A span processing one Kafka record, child of the context its headers carry; current."""
    tracer = _tracer or trace.get_tracer(_INSTRUMENTATION)
    with tracer.start_as_current_span(
        name, context=context_from_headers(headers), kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span


def start_consumer_span(name: str, headers: object, attributes: Attributes = None) -> Span:
    """Like ``consumer_span`` but neither current nor ended: a batch's message (end it)."""
    tracer = _tracer or trace.get_tracer(_INSTRUMENTATION)
    return tracer.start_span(
        name, context=context_from_headers(headers), kind=SpanKind.CONSUMER, attributes=attributes
    )


@contextmanager
def server_span(
    name: str, headers: Mapping[str, str], attributes: Attributes = None
) -> Iterator[Span]:
    """An HTTP request being served, continuing the caller's ``traceparent`` if it sent one."""
    tracer = _tracer or trace.get_tracer(_INSTRUMENTATION)
    carrier = {key: headers[key] for key in (TRACEPARENT, TRACESTATE) if key in headers}
    with tracer.start_as_current_span(
        name,
        context=_PROPAGATOR.extract(carrier),
        kind=SpanKind.SERVER,
        attributes=attributes,
        record_exception=False,  # the error middleware answers it; it is logged there
    ) as span:
        yield span


@contextmanager
def client_span(
    name: str, traceparent: str | None, attributes: Attributes = None
) -> Iterator[Span]:
    """A call out, child of the stored ``traceparent`` (a new trace when there is none)."""
    tracer = _tracer or trace.get_tracer(_INSTRUMENTATION)
    with tracer.start_as_current_span(
        name,
        context=context_from_traceparent(traceparent),
        kind=SpanKind.CLIENT,
        attributes=attributes,
    ) as span:
        yield span


def mark_failed(span: Span, description: str | None = None) -> None:
    span.set_status(Status(StatusCode.ERROR, description))


# --- the request being served ---------------------------------------------------------------------


def set_request_id(request_id: str) -> Token[str | None]:
    return _request_id.set(request_id)


def reset_request_id(token: Token[str | None]) -> None:
    _request_id.reset(token)


def current_request_id() -> str | None:
    return _request_id.get()
