"""AckPipeline: messages decided in order, each acknowledged only once everything it sent is.

The committed offset of a money-moving agent must never pass a message whose events Kafka has not
acknowledged; the pipeline lets the agent go on to the next message meanwhile
(app/runtime/pipelining.py). A fake stream and hand-resolved send futures stand in for Faust and
Kafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.runtime import pipelining
from app.runtime.pipelining import AckPipeline, defer_acknowledgement

pytestmark = pytest.mark.component


class FakeEvent:
    def __init__(self, offset: int, log: list[str]) -> None:
        self.value = offset
        self.message = type("Message", (), {"tp": ("t", 0), "offset": offset})()
        self.acked = False
        self._log = log

    def ack(self) -> bool:
        assert not self.acked, "acknowledged twice"
        self.acked = True
        self._log.append(f"ack {self.value}")
        return True


class FakeStream:
    """Hands out its events, then waits (as a topic with nothing new would)."""

    def __init__(self, events: list[FakeEvent]) -> None:
        self._events = events
        self.current_event: FakeEvent | None = None
        self.delivered = asyncio.Event()

    def noack(self) -> FakeStream:
        return self

    async def events(self) -> AsyncIterator[FakeEvent]:
        for event in self._events:
            self.current_event = event
            yield event
        self.delivered.set()
        await asyncio.Event().wait()

    def _set_current_event(self, event: FakeEvent | None) -> None:
        self.current_event = event


class Broker:
    """Each handled message sends one record; the test decides when Kafka acknowledges it."""

    def __init__(self, stream: FakeStream, log: list[str]) -> None:
        self.stream = stream
        self.log = log
        self.sends: dict[int, list[asyncio.Future[None]]] = {}
        self.handled_under: list[tuple[int, int]] = []

    async def handle(self, event: FakeEvent) -> str:
        assert self.stream.current_event is not None
        self.handled_under.append((event.value, self.stream.current_event.value))
        self.log.append(f"handle {event.value}")
        send: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sends.setdefault(event.value, []).append(send)
        if not defer_acknowledgement([send]):
            raise AssertionError("a handler inside the pipeline must have its sends collected")
        return f"answer {event.value}"

    def acknowledge(self, offset: int, error: BaseException | None = None) -> None:
        send = self.sends[offset][-1]
        if error is None:
            send.set_result(None)
        else:
            send.set_exception(error)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def pipeline_for(
    count: int, window: int = 100
) -> tuple[AckPipeline[str], FakeStream, Broker, list[str]]:
    log: list[str] = []
    events = [FakeEvent(offset, log) for offset in range(count)]
    stream = FakeStream(events)
    broker = Broker(stream, log)

    async def answered(event: Any, answer: str) -> None:
        log.append(f"{answer} after ack {event.value}")

    pipeline = AckPipeline(
        stream,  # type: ignore[arg-type]
        "test_agent",
        broker.handle,  # type: ignore[arg-type]
        on_acknowledged=answered,
        window=window,
    )
    return pipeline, stream, broker, log


async def test_the_next_message_is_decided_before_the_last_ones_sends_are_acknowledged() -> None:
    pipeline, stream, broker, log = pipeline_for(3)
    task = asyncio.create_task(pipeline.run())
    await stream.delivered.wait()
    await settle()
    assert log == ["handle 0", "handle 1", "handle 2"]  # none waited for Kafka

    broker.acknowledge(1)  # out of order: 1 may not be acknowledged before 0
    await settle()
    assert log[3:] == []
    broker.acknowledge(0)
    await settle()
    assert log[3:] == ["ack 0", "answer 0 after ack 0", "ack 1", "answer 1 after ack 1"]
    broker.acknowledge(2)
    await settle()
    assert log[-2:] == ["ack 2", "answer 2 after ack 2"]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_outside_a_pipeline_sends_are_not_collected() -> None:
    send: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    assert defer_acknowledgement([send]) is False


async def test_a_failed_send_replays_every_unacknowledged_message_in_order() -> None:
    pipeline, stream, broker, log = pipeline_for(4)
    replays = pipelining.PIPELINE_REPLAYS.labels(agent="test_agent")
    before = replays._value.get()
    events = list(stream._events)

    def submit(offset: int) -> Any:
        stream.current_event = events[offset]  # as Faust sets it for the message it delivers
        return pipeline.submit(events[offset])  # type: ignore[arg-type]

    for offset in range(3):
        await submit(offset)
    broker.acknowledge(0)
    broker.acknowledge(1, ConnectionError("broker unreachable"))
    broker.acknowledge(2)
    await settle()
    assert [entry for entry in log if entry.startswith("ack")] == ["ack 0"]

    # The next message first replays 1 and 2, awaiting each one's new send.
    submitted = asyncio.create_task(submit(3))
    await settle()
    assert log[-1] == "handle 1"
    broker.acknowledge(1)
    await settle()
    assert log[-3:] == ["ack 1", "answer 1 after ack 1", "handle 2"]
    broker.acknowledge(2)
    await submitted
    assert "handle 3" in log and log.index("handle 3") > log.index("ack 2")
    # Replayed under their own event (their table writes go to their own partition) and the
    # stream's current event restored afterwards.
    assert (1, 1) in broker.handled_under[3:] and (2, 2) in broker.handled_under[3:]
    assert broker.handled_under[-1] == (3, 3)
    assert replays._value.get() == before + 1
    broker.acknowledge(3)
    await settle()
    assert log[-1] == "answer 3 after ack 3"
    assert all(event.acked for event in events)
    await pipeline.close()


async def test_at_most_window_messages_wait_for_their_acknowledgements() -> None:
    pipeline, stream, broker, log = pipeline_for(5, window=2)
    task = asyncio.create_task(pipeline.run())
    await settle()
    assert log == ["handle 0", "handle 1"]
    broker.acknowledge(0)
    await settle()
    assert log[-1] == "handle 2"
    assert [entry for entry in log if entry.startswith("handle")] == [
        "handle 0",
        "handle 1",
        "handle 2",
    ]
    for offset in (1, 2, 3, 4):
        await settle()
        broker.acknowledge(offset)
    await stream.delivered.wait()
    await settle()
    assert all(event.acked for event in stream._events)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
