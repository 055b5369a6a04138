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
