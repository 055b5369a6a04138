"""A money agent's message is a CONSUMER span in the trace its headers carry, and what it publishes
carries that span on: AckPipeline, KafkaPublisher and app/adapters/telemetry.py together.

Messages are decided one after the other while their sends wait for Kafka (pipelining): each
message's records must carry its own span, never the one before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.adapters import telemetry
from app.runtime.pipelining import AckPipeline
from app.runtime.publishing import KafkaPublisher
from app.runtime.topics import DOMAIN_EVENTS, Topics
from tests.support.fakes import FakeEvent, RecordingTopic
from tests.support.tracing import (
    CALLER_TRACE_ID,
    ids,
    parent_id,
    parse_traceparent,
    spans,
    traceparent,
)
from tests.unit.live.scenario import Scenario

pytestmark = pytest.mark.component

__all__ = ["spans"]  # the fixture

COMMANDS = "checkout.invoice-commands"
OTHER_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


class AnyTopics(dict[Any, RecordingTopic]):
    def __missing__(self, spec: Any) -> RecordingTopic:
        self[spec] = RecordingTopic(str(spec))
        return self[spec]


class Stream:
    """Hands out its events, then waits (as a topic with nothing new would)."""

    def __init__(self, events: list[FakeEvent]) -> None:
        self._events = events
        self.current_event: FakeEvent | None = None

    def noack(self) -> Stream:
        return self

    async def events(self) -> AsyncIterator[FakeEvent]:
        for event in self._events:
            self.current_event = event
            yield event
        await asyncio.Event().wait()

    def _set_current_event(self, event: FakeEvent | None) -> None:
        self.current_event = event


def command(trace_id: str | None, span_id: str = "00f067aa0ba902b7") -> FakeEvent:
    event = FakeEvent(COMMANDS, {"type": "CreateInvoice"}, key=b"inv_1")
    if trace_id is not None:
        event.message.headers = (("traceparent", traceparent(trace_id, span_id).encode()),)
    return event


@pytest.fixture
def topics() -> Iterator[AnyTopics]:
    yield AnyTopics()


async def run_pipeline(events: list[FakeEvent], topics: AnyTopics) -> None:
    publisher = KafkaPublisher(cast(Topics, topics))
    scenario = Scenario(invoice_id="inv_1")

    async def handle(event: Any) -> None:
        await asyncio.sleep(0)  # the next message may not start before this one is decided
        await publisher.publish_events(scenario.events)

    acknowledged: list[Any] = []
    all_acknowledged = asyncio.Event()

    async def on_acknowledged(event: Any, result: None) -> None:
        acknowledged.append(event)
        if len(acknowledged) == len(events):
            all_acknowledged.set()

    pipeline = AckPipeline(
        cast(Any, Stream(events)), "invoice_agent", handle, on_acknowledged=on_acknowledged
    )
    task = asyncio.create_task(pipeline.run())
    async with asyncio.timeout(5):
        await all_acknowledged.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_each_message_is_a_consumer_span_and_its_records_carry_it(
    topics: AnyTopics, spans: InMemorySpanExporter
) -> None:
    events = [
        command(CALLER_TRACE_ID, "00f067aa0ba902b7"),
        command(OTHER_TRACE_ID, "b7ad6b7169203331"),
    ]
    await run_pipeline(events, topics)

    first, second = spans.get_finished_spans()
    assert (first.name, first.kind) == ("invoice_agent process", SpanKind.CONSUMER)
    assert (ids(first)[0], parent_id(first)) == (CALLER_TRACE_ID, "00f067aa0ba902b7")
    assert (ids(second)[0], parent_id(second)) == (OTHER_TRACE_ID, "b7ad6b7169203331")
    attributes = dict(first.attributes or {})
    assert attributes["messaging.system"] == "kafka"
    assert attributes["messaging.destination.name"] == COMMANDS
    assert attributes["messaging.kafka.offset"] == events[0].message.offset

    published = topics[DOMAIN_EVENTS].headers
    assert len(published) == 2 * len(Scenario(invoice_id="inv_1").events)
    carried = [parse_traceparent(dict(headers)["traceparent"]) for headers in published]
    half = len(carried) // 2
    assert set(carried[:half]) == {ids(first)}
    assert set(carried[half:]) == {ids(second)}


async def test_a_message_without_a_context_starts_a_trace(
    topics: AnyTopics, spans: InMemorySpanExporter
) -> None:
    await run_pipeline([command(None)], topics)
    [span] = spans.get_finished_spans()
    assert span.parent is None
    assert {parse_traceparent(dict(h)["traceparent"]) for h in topics[DOMAIN_EVENTS].headers} == {
        ids(span)
    }


async def test_while_tracing_is_off_records_go_without_headers(topics: AnyTopics) -> None:
    assert not telemetry.active()
    await run_pipeline([command(CALLER_TRACE_ID)], topics)
    assert topics[DOMAIN_EVENTS].headers and set(topics[DOMAIN_EVENTS].headers) == {None}
