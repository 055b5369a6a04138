"""The live status agent's handler: events folded into the customers' views, Redis outages."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from agents.live_status import LiveStatusAgent
from app.runtime.retry import RetryPolicy
from tests.support.fakes import FakeEvent, MemoryWorld
from tests.unit.live.scenario import Scenario

pytestmark = pytest.mark.component

TOPIC = "crypto-checkout.domain-events"
RETRY = RetryPolicy(attempts=3, initial_delay=0.0, max_delay=0.0)
EVENT = Scenario().events[0]


@pytest.fixture
def agent(world: MemoryWorld) -> LiveStatusAgent:
    return LiveStatusAgent(world.live_views, world.dead_letters, retry=RETRY)


def message(value: bytes) -> FakeEvent:
    return FakeEvent(TOPIC, value, key=b"inv_live_1", partition=3)


async def test_an_event_is_folded_into_the_view(world: MemoryWorld, agent: LiveStatusAgent) -> None:
    await agent.handle(message(EVENT.model_dump_json().encode()))
    view = await world.live_views.current("inv_live_1")
    assert view is not None and (view["status"], view["version"]) == ("pending", 1)
    assert world.dead_letter_topics.records() == []


async def test_redis_briefly_down_is_retried_then_applied(
    world: MemoryWorld, agent: LiveStatusAgent
) -> None:
    world.live_views.failures = [RedisConnectionError("restarting")] * 2
    await agent.handle(message(EVENT.model_dump_json().encode()))
    assert await world.live_views.current("inv_live_1") is not None
    assert world.dead_letter_topics.records() == []


async def test_redis_down_for_good_sends_the_message_to_the_dead_letter_topic(
    world: MemoryWorld, agent: LiveStatusAgent
) -> None:
    world.live_views.failures = [RedisConnectionError("gone")] * 10
    value = EVENT.model_dump_json().encode()
    event = message(value)
    await agent.handle(event)
    assert len(world.live_views.failures) == 10 - RETRY.attempts  # type: ignore[operator]
    [dead] = world.dead_letter_topics.records(TOPIC)
    assert dead["value"] == {"text": value.decode()}
    assert dead["key"] == {"text": "inv_live_1"}
    assert dead["source"] == {"topic": TOPIC, "partition": 3, "offset": event.message.offset}
    assert dead["error_type"] == "ConnectionError"


@pytest.mark.parametrize(
    "value",
    [b"not json", b'{"event_type": "InvoiceExploded"}', b"", b'{"event_type": "InvoiceCreated"}'],
)
async def test_a_message_that_is_not_an_event_is_dead_lettered_at_once(
    world: MemoryWorld, agent: LiveStatusAgent, value: bytes
) -> None:
    await agent.handle(message(value))
    [dead] = world.dead_letter_topics.records(TOPIC)
    assert dead["agent"] == "live_status"
    assert world.live_views.states == {}


async def test_a_bug_while_applying_is_dead_lettered_not_retried(
    world: MemoryWorld, agent: LiveStatusAgent
) -> None:
    world.live_views.failures = [KeyError("status"), KeyError("status")]
    await agent.handle(message(EVENT.model_dump_json().encode()))
    [dead] = world.dead_letter_topics.records(TOPIC)
    assert dead["error_type"] == "KeyError"
    assert len(world.live_views.failures) == 1  # one attempt only
