"""The projection agent's handler: every domain event into the event store, once."""

from __future__ import annotations

import pytest

from agents.projections import ProjectionAgent
from app.domain.events import parse_event
from tests.support.fakes import FakeEvent, MemoryWorld
from tests.unit.live.scenario import Scenario

pytestmark = pytest.mark.component

TOPIC = "crypto-checkout.domain-events"


@pytest.fixture
def agent(world: MemoryWorld) -> ProjectionAgent:
    return ProjectionAgent(world.services.projection, world.dead_letters)


def messages(scenario: Scenario) -> list[FakeEvent]:
    return [
        FakeEvent(TOPIC, e.model_dump_json().encode(), key=e.aggregate_id.encode(), partition=4)
        for e in scenario.events
    ]


async def test_every_event_is_recorded_with_where_it_was_read(
    world: MemoryWorld, agent: ProjectionAgent
) -> None:
    scenario = Scenario(amount="9.99")
    scenario.pay("9.99")
    delivered = messages(scenario)
    for event in delivered:
        await agent.handle(event)

    store = world.projections.event_store
    assert list(store) == [str(e.event_id) for e in scenario.events]
    for event, message in zip(scenario.events, delivered, strict=True):
        recorded, partition, offset = store[str(event.event_id)]
        assert recorded == event  # the very event, field for field
        assert (partition, offset) == (4, message.message.offset)
    assert world.dead_letter_topics.records() == []


async def test_a_redelivered_event_reaches_the_store_as_the_same_event(
    world: MemoryWorld, agent: ProjectionAgent
) -> None:
    [created] = messages(Scenario())
    await agent.handle(created)
    await agent.handle(created)  # Kafka delivers it again
    # Applied twice under the same event id, which the store records once (PostgreSQL's
    # ON CONFLICT DO NOTHING: tests/integration/pipeline/test_invoice_list.py).
    first, again = world.projections.applied
    assert first == again == str(parse_event(created.value).event_id)


async def test_postgres_down_is_waited_out_and_a_refused_event_is_dead_lettered(
    world: MemoryWorld, agent: ProjectionAgent
) -> None:
    first, second = messages(Scenario())[0], messages(Scenario(invoice_id="inv_live_2"))[0]
    world.projections.failures = [ConnectionError("PostgreSQL restarting")]
    await agent.handle(first)
    assert len(world.projections.event_store) == 1  # retried, then recorded

    world.projections.failures = [ValueError("aggregate version 1 of inv_live_2 is taken")]
    await agent.handle(second)
    [record] = world.dead_letter_topics.records(TOPIC)
    assert (record["agent"], record["error_type"]) == ("projection_agent", "ValueError")


async def test_an_unreadable_event_goes_to_the_dead_letter_topic(
    world: MemoryWorld, agent: ProjectionAgent
) -> None:
    await agent.handle(FakeEvent(TOPIC, b'{"event_type": "InvoiceCreated"}', key=b"inv_1"))
    [record] = world.dead_letter_topics.records(TOPIC)
    assert (record["agent"], record["error_type"]) == ("projection_agent", "ValidationError")
    assert world.projections.event_store == {}


async def test_a_batch_is_applied_in_one_transaction_in_order(
    world: MemoryWorld, agent: ProjectionAgent
) -> None:
    scenario = Scenario(amount="150")
    scenario.pay("150")
    delivered = messages(scenario)
    await agent.handle_batch(delivered)

    assert world.projections.batches == [len(delivered)]
    assert world.projections.applied == [str(e.event_id) for e in scenario.events]
    recorded = [world.projections.event_store[str(e.event_id)] for e in scenario.events]
    assert [(p, o) for _, p, o in recorded] == [(4, m.message.offset) for m in delivered]
    assert world.dead_letter_topics.records() == []


async def test_a_batch_waits_out_postgres_down_and_is_applied_once(
    world: MemoryWorld, agent: ProjectionAgent
) -> None:
    delivered = messages(Scenario()) + messages(Scenario(invoice_id="inv_live_2"))
    world.projections.failures = [ConnectionError("PostgreSQL restarting")]
    await agent.handle_batch(delivered)
    assert world.projections.batches == [2]
    assert len(world.projections.applied) == 2
    assert world.dead_letter_topics.records() == []


async def test_a_refused_event_in_a_batch_is_dead_lettered_alone(
    world: MemoryWorld, agent: ProjectionAgent
) -> None:
    first, refused, last = (messages(Scenario(invoice_id=f"inv_live_{n}"))[0] for n in (1, 2, 3))
    world.projections.refuse = {str(parse_event(refused.value).event_id)}
    await agent.handle_batch([first, refused, last])

    # The batch was refused whole, then its events applied one by one.
    assert world.projections.batches == []
    assert world.projections.applied == [str(parse_event(m.value).event_id) for m in (first, last)]
    [record] = world.dead_letter_topics.records(TOPIC)
    assert (record["agent"], record["error_type"]) == ("projection_agent", "ValueError")
    assert record["key"] == {"text": "inv_live_2"}


async def test_an_unreadable_event_in_a_batch_does_not_hold_up_the_others(
    world: MemoryWorld, agent: ProjectionAgent
) -> None:
    good = messages(Scenario())[0]
    bad = FakeEvent(TOPIC, b"{not json", key=b"inv_1")
    await agent.handle_batch([bad, good])
    assert world.projections.batches == [1]
    [record] = world.dead_letter_topics.records(TOPIC)
    assert record["agent"] == "projection_agent"
