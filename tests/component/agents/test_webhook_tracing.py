"""The webhook agents keep each event's trace across their batches: an event's notifications carry
the span of that event's fan-out, and each queued delivery the span of its notification's intake."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agents.webhooks import WebhookAgents
from app.runtime.codecs import encode_notification
from tests.support.fakes import FakeEvent, MemoryWorld
from tests.support.tracing import ids, named, parent_id, parse_traceparent, spans, traceparent
from tests.unit.domain.factories import MERCHANT_ID
from tests.unit.live.scenario import Scenario

pytestmark = pytest.mark.component

__all__ = ["spans"]  # the fixture

EVENTS = "crypto-checkout.domain-events"
NOTIFICATIONS = "crypto-checkout.notifications"
TRACES = ("4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c")
PARENTS = ("00f067aa0ba902b7", "b7ad6b7169203331")


def traced(event: FakeEvent, header: str) -> FakeEvent:
    event.message.headers = (("traceparent", header.encode()),)
    return event


async def test_each_event_of_a_batch_keeps_its_trace_to_the_queued_delivery(
    world: MemoryWorld, spans: InMemorySpanExporter
) -> None:
    agents = WebhookAgents(
        world.services.webhook_fanout, world.services.delivery_intake, world.dead_letters
    )
    world.webhooks.add_endpoint(MERCHANT_ID, ["*"])
    scenarios = [Scenario(invoice_id="inv_trace_1"), Scenario(invoice_id="inv_trace_2")]
    events = [
        traced(
            FakeEvent(EVENTS, scenario.events[0].model_dump_json().encode()),
            traceparent(trace_id, parent),
        )
        for scenario, trace_id, parent in zip(scenarios, TRACES, PARENTS, strict=True)
    ]
    await agents.fan_out_batch(events)

    fan_outs = named(spans.get_finished_spans(), "webhook_agent process")
    assert [(ids(span)[0], parent_id(span)) for span in fan_outs] == list(
        zip(TRACES, PARENTS, strict=True)
    )
    assert {span.kind for span in fan_outs} == {SpanKind.CONSUMER}
    notifications = world.publisher.notifications
    assert [n.event["aggregate_id"] for n in notifications] == ["inv_trace_1", "inv_trace_2"]
    assert [parse_traceparent(n.traceparent or "") for n in notifications] == [
        ids(span) for span in fan_outs
    ]

    # The notifications, as Kafka hands them to the intake: the traceparent in their headers.
    await agents.take_in_batch(
        [
            traced(FakeEvent(NOTIFICATIONS, encode_notification(n)), n.traceparent or "")
            for n in notifications
        ]
    )
    intakes = named(spans.get_finished_spans(), "delivery_intake_agent process")
    assert [parent_id(span) for span in intakes] == [ids(span)[1] for span in fan_outs]
    queued = [world.webhooks.queued[n.delivery_id] for n in notifications]
    assert [parse_traceparent(q.traceparent or "") for q in queued] == [
        ids(span) for span in intakes
    ]


async def test_while_tracing_is_off_notifications_carry_no_context(world: MemoryWorld) -> None:
    agents = WebhookAgents(
        world.services.webhook_fanout, world.services.delivery_intake, world.dead_letters
    )
    world.webhooks.add_endpoint(MERCHANT_ID, ["*"])
    [created] = Scenario(invoice_id="inv_trace_3").events
    event = traced(FakeEvent(EVENTS, created.model_dump_json().encode()), traceparent())
    await agents.fan_out_batch([event])
    [notification] = world.publisher.notifications
    assert notification.traceparent is None
    await agents.take_in_batch(
        [traced(FakeEvent(NOTIFICATIONS, encode_notification(notification)), traceparent())]
    )
    assert world.webhooks.queued[notification.delivery_id].traceparent is None
