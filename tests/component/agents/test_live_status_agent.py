"""The live status agent's handler: events folded into the customers' views, Redis outages."""

from __future__ import annotations

import pytest
from redis.exceptions import BusyLoadingError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agents.live_status import LiveStatusAgent
from app.runtime.retry import RetryPolicy
from app.services.errors import LiveViewUnavailable
from tests.support.fakes import FakeEvent, MemoryWorld
from tests.unit.live.scenario import Scenario

pytestmark = pytest.mark.component

TOPIC = "crypto-checkout.domain-events"
RETRY = RetryPolicy(attempts=3, initial_delay=0.0, max_delay=0.0)
OUTAGE = RetryPolicy(initial_delay=0.0, max_delay=0.0)  # until it succeeds, without waiting
EVENT = Scenario().events[0]


@pytest.fixture
def agent(world: MemoryWorld) -> LiveStatusAgent:
    return LiveStatusAgent(world.live_views, world.dead_letters, retry=RETRY, outage=OUTAGE)


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


@pytest.mark.parametrize(
    "outage",
    [
        RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
        BusyLoadingError("Redis is loading the dataset in memory"),  # just restarted
        RedisTimeoutError("Timeout reading from socket"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
)
async def test_redis_unreachable_is_waited_out_however_long_and_the_event_applied(
    world: MemoryWorld, agent: LiveStatusAgent, outage: Exception
) -> None:
    # Giving up (the dead-letter topic, as before) left the customer's page at a stale status
    # for good: after Redis was stopped for 30 s, a paid invoice's page showed it pending
    # (tests/faults/test_outages.py).
    world.live_views.failures = [outage] * 100
    await agent.handle(message(EVENT.model_dump_json().encode()))
    assert world.live_views.failures == []
    view = await world.live_views.current("inv_live_1")
    assert view is not None and view["status"] == "pending"
    assert world.dead_letter_topics.records() == []


async def test_a_view_that_changes_under_every_attempt_goes_to_the_dead_letter_topic(
    world: MemoryWorld, agent: LiveStatusAgent
) -> None:
    world.live_views.failures = [LiveViewUnavailable("changed 50 times")] * 10
    value = EVENT.model_dump_json().encode()
    event = message(value)
    await agent.handle(event)
    assert len(world.live_views.failures) == 10 - RETRY.attempts  # type: ignore[operator]
    [dead] = world.dead_letter_topics.records(TOPIC)
    assert dead["value"] == {"text": value.decode()}
    assert dead["key"] == {"text": "inv_live_1"}
    assert dead["source"] == {"topic": TOPIC, "partition": 3, "offset": event.message.offset}
    assert dead["error_type"] == "LiveViewUnavailable"


async def test_an_error_answer_from_redis_is_tried_a_few_times_then_dead_lettered(
    world: MemoryWorld, agent: LiveStatusAgent
) -> None:
    world.live_views.failures = [ResponseError("OOM command not allowed")] * 10
    await agent.handle(message(EVENT.model_dump_json().encode()))
    assert len(world.live_views.failures) == 10 - RETRY.attempts  # type: ignore[operator]
    [dead] = world.dead_letter_topics.records(TOPIC)
    assert dead["error_type"] == "ResponseError"


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
