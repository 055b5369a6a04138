"""The webhook agents' handlers: events fanned out to endpoints, notifications queued once."""

from __future__ import annotations

import pytest

from agents.webhooks import WebhookAgents
from app.domain.webhooks import first_delivery_id
from app.runtime.codecs import encode_notification
from tests.support.fakes import FakeEvent, MemoryWorld
from tests.unit.domain.factories import MERCHANT_ID
from tests.unit.live.scenario import Scenario

pytestmark = pytest.mark.component

EVENTS = "crypto-checkout.domain-events"
NOTIFICATIONS = "crypto-checkout.notifications"


@pytest.fixture
def agents(world: MemoryWorld) -> WebhookAgents:
    services = world.services
    return WebhookAgents(services.webhook_fanout, services.delivery_intake, world.dead_letters)


def created_event() -> FakeEvent:
    [created] = Scenario(invoice_id="inv_hook_1").events
    return FakeEvent(EVENTS, created.model_dump_json().encode(), key=b"inv_hook_1")


async def test_an_event_is_fanned_out_to_the_endpoints_that_want_it_and_queued(
    world: MemoryWorld, agents: WebhookAgents
) -> None:
    invoices = world.webhooks.add_endpoint(MERCHANT_ID, ["Invoice*"])
    world.webhooks.add_endpoint(MERCHANT_ID, ["Payment*"])  # does not want it
    world.webhooks.add_endpoint("mer_someone_else", ["*"])  # not this merchant's
    event = created_event()
    await agents.fan_out(event)

    [notification] = world.publisher.notifications
    event_id = notification.event["event_id"]
    assert notification.delivery_id == first_delivery_id(invoices.endpoint_id, event_id)
    assert notification.event["aggregate_id"] == "inv_hook_1"  # the envelope as published
    assert notification.key == b"inv_hook_1"

    await agents.take_in(FakeEvent(NOTIFICATIONS, encode_notification(notification)))
    assert list(world.webhooks.queued) == [notification.delivery_id]
    assert world.dispatcher.wakes == 1


async def test_a_redelivered_event_queues_each_delivery_once(
    world: MemoryWorld, agents: WebhookAgents
) -> None:
    world.webhooks.add_endpoint(MERCHANT_ID, ["*"])
    event = created_event()
    await agents.fan_out(event)
    await agents.fan_out(event)  # Kafka delivers it again
    first, again = world.publisher.notifications
    assert first.delivery_id == again.delivery_id  # derived from endpoint and event

    for notification in (first, again):
        await agents.take_in(FakeEvent(NOTIFICATIONS, encode_notification(notification)))
    assert len(world.webhooks.queued) == 1
    assert world.dead_letter_topics.records() == []


async def test_an_endpoint_is_not_told_of_its_own_disabling(
    world: MemoryWorld, agents: WebhookAgents
) -> None:
    from app.domain.webhooks import endpoint_disabled_event
    from tests.unit.domain.factories import T0

    endpoint = world.webhooks.add_endpoint(MERCHANT_ID, ["*"])
    other = world.webhooks.add_endpoint(MERCHANT_ID, ["*"])
    disabled = endpoint_disabled_event(
        endpoint_id=endpoint.endpoint_id,
        endpoint_version=2,
        merchant_id=MERCHANT_ID,
        url=endpoint.url,
        failing_since=T0,
        disabled_at=T0,
    )
    await agents.fan_out(FakeEvent(EVENTS, disabled.model_dump_json().encode()))
    assert [n.endpoint_id for n in world.publisher.notifications] == [other.endpoint_id]


async def test_an_unreadable_event_and_a_malformed_notification_go_to_their_dead_letter_topics(
    world: MemoryWorld, agents: WebhookAgents
) -> None:
    world.webhooks.add_endpoint(MERCHANT_ID, ["*"])
    await agents.fan_out(FakeEvent(EVENTS, b'{"event_type": "InvoiceExploded"}', key=b"inv_1"))
    await agents.take_in(FakeEvent(NOTIFICATIONS, b'{"delivery_id": "whd_1"}', key=b"inv_1"))

    [refused_event] = world.dead_letter_topics.records(EVENTS)
    assert (refused_event["agent"], refused_event["error_type"]) == (
        "webhook_agent",
        "ValidationError",
    )
    [refused_notification] = world.dead_letter_topics.records(NOTIFICATIONS)
    assert (refused_notification["agent"], refused_notification["error_type"]) == (
        "delivery_intake_agent",
        "MalformedMessage",
    )
    assert world.publisher.notifications == [] and world.webhooks.queued == {}


async def test_a_batch_of_events_is_fanned_out_and_queued_in_one_statement(
    world: MemoryWorld, agents: WebhookAgents
) -> None:
    world.webhooks.add_endpoint(MERCHANT_ID, ["*"])
    world.webhooks.add_endpoint(MERCHANT_ID, ["Invoice*"])
    scenario = Scenario(invoice_id="inv_hook_1")
    scenario.pay("9.99")
    events = [
        FakeEvent(EVENTS, e.model_dump_json().encode(), key=b"inv_hook_1") for e in scenario.events
    ]
    unreadable = FakeEvent(EVENTS, b'{"event_type": "InvoiceExploded"}', key=b"inv_1")
    await agents.fan_out_batch([events[0], unreadable, *events[1:]])

    notifications = world.publisher.notifications
    # Every event to the endpoint of all types, the invoice events to the other, in order.
    assert [
        n.event["event_id"] for n in notifications if n.event["event_type"].startswith("Invoice")
    ] == [
        str(e.event_id)
        for e in scenario.events
        if e.event_type.startswith("Invoice")
        for _ in range(2)
    ]
    [refused] = world.dead_letter_topics.records(EVENTS)
    assert refused["agent"] == "webhook_agent"

    delivered = [FakeEvent(NOTIFICATIONS, encode_notification(n)) for n in notifications]
    await agents.take_in_batch([*delivered, delivered[0]])  # one redelivered within the batch
    assert world.webhooks.enqueue_batches == [len(delivered) + 1]
    assert list(world.webhooks.queued) == [n.delivery_id for n in notifications]
    assert world.dispatcher.wakes == 1


async def test_a_refused_intake_batch_is_queued_one_by_one(
    world: MemoryWorld, agents: WebhookAgents
) -> None:
    world.webhooks.add_endpoint(MERCHANT_ID, ["*"])
    await agents.fan_out(created_event())
    [notification] = world.publisher.notifications
    world.webhooks.enqueue_failures = [ValueError("value too long for type text")]
    malformed = FakeEvent(NOTIFICATIONS, b'{"delivery_id": "whd_1"}', key=b"inv_1")
    await agents.take_in_batch(
        [malformed, FakeEvent(NOTIFICATIONS, encode_notification(notification))]
    )
    assert list(world.webhooks.queued) == [notification.delivery_id]  # then on its own
    [refused] = world.dead_letter_topics.records(NOTIFICATIONS)
    assert refused["error_type"] == "MalformedMessage"
