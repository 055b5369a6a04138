"""The live status agent's per-message handling: apply, retry while Redis is down, dead-letter."""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from agents.live_status import RETRY_DELAYS, process
from app.domain.events import DomainEvent

from .scenario import Scenario

pytestmark = pytest.mark.unit


class Recorder:
    def __init__(self, failures: int = 0, error: BaseException | None = None) -> None:
        self.failures = failures
        self.error = error or RedisConnectionError("Redis is restarting")
        self.applied: list[DomainEvent] = []
        self.calls = 0
        self.dead: list[dict[str, Any]] = []
        self.slept: list[float] = []

    async def apply(self, event: DomainEvent) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        self.applied.append(event)

    async def dead_letter(self, **fields: Any) -> None:
        self.dead.append(fields)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


async def run(recorder: Recorder, value: bytes) -> None:
    await process(
        recorder.apply,
        recorder.dead_letter,
        key=b"inv_live_1",
        value=value,
        partition=3,
        offset=42,
        sleep=recorder.sleep,
    )


EVENT = Scenario().events[0]


async def test_an_event_is_parsed_and_applied() -> None:
    recorder = Recorder()
    await run(recorder, EVENT.model_dump_json().encode())
    assert recorder.applied == [EVENT]
    assert recorder.dead == []


async def test_redis_briefly_down_is_retried_then_applied() -> None:
    recorder = Recorder(failures=2)
    await run(recorder, EVENT.model_dump_json().encode())
    assert recorder.applied == [EVENT]
    assert recorder.slept == list(RETRY_DELAYS[:2])
    assert recorder.dead == []


async def test_redis_down_for_good_sends_the_message_to_the_dead_letter_topic() -> None:
    recorder = Recorder(failures=100)
    value = EVENT.model_dump_json().encode()
    await run(recorder, value)
    assert recorder.applied == []
    assert recorder.calls == len(RETRY_DELAYS) + 1
    [dead] = recorder.dead
    assert dead["value"] == value
    assert dead["key"] == b"inv_live_1"
    assert (dead["source_topic"], dead["partition"], dead["offset"]) == (
        "crypto-checkout.domain-events",
        3,
        42,
    )
    assert isinstance(dead["error"], RedisConnectionError)


@pytest.mark.parametrize(
    "value",
    [b"not json", b'{"event_type": "InvoiceExploded"}', b"", b'{"event_type": "InvoiceCreated"}'],
)
async def test_a_message_that_is_not_an_event_is_dead_lettered_at_once(value: bytes) -> None:
    recorder = Recorder()
    await run(recorder, value)
    assert recorder.calls == 0
    [dead] = recorder.dead
    assert dead["value"] == value
    assert dead["agent"] == "live_status"


async def test_a_bug_while_applying_is_dead_lettered_not_raised() -> None:
    recorder = Recorder(failures=1, error=KeyError("status"))
    await run(recorder, EVENT.model_dump_json().encode())
    [dead] = recorder.dead
    assert isinstance(dead["error"], KeyError)
    assert recorder.slept == []
