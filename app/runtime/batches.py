"""Read a stream in batches, acknowledging a batch only after the agent is done with it.

Faust's ``Stream.take_events(max_, within)`` buffers up to ``max_`` events, hands them over when
the buffer is full or ``within`` seconds have passed, and acknowledges them after the agent's
loop body for the batch has finished — so a batch's offsets commit only after what it caused is
durable, as for one event at a time. It waits the whole window when fewer events come, so the
window is the latency a batch adds. (``StreamT``, the type agents are given, does not declare
it: faust-streaming 0.15 has it on ``Stream`` only.) ``apply_in_batch`` is what an agent then
does with a batch; ``BatchFanOut`` is what a fan-out agent (webhooks, notices) does with a batch of
domain events.

With tracing on, ``message_spans`` gives each message of a batch a ``<agent> process`` span of its
own, child of the trace context its headers carry, for as long as the batch is worked on: what a
message leads to (a notification, a queued delivery) joins its trace through ``traceparent``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, Generic, Protocol, Self, TypeVar, cast

import faust

from app.adapters import telemetry
from app.runtime.dead_letters import DeadLetters
from app.runtime.retry import retry_transient

D = TypeVar("D")


class Traced(Protocol):
    def traced(self, traceparent: str | None) -> Self: ...


M = TypeVar("M", bound=Traced)


def batches(stream: faust.StreamT[Any], size: int, within: float) -> AsyncIterator[Sequence[Any]]:
    """The events of ``stream``, ``size`` at most per batch, after ``within`` s at the latest."""
    return cast(faust.Stream[Any], stream).take_events(size, within=within)


class MessageSpans:
    """The span of each message of a batch (none while tracing is off)."""

    def __init__(self, spans: dict[int, telemetry.Span] | None = None) -> None:
        self._spans = spans or {}

    def traceparent(self, event: faust.EventT) -> str | None:
        """The ``traceparent`` of ``event``'s span: what it leads to joins its trace."""
        span = self._spans.get(id(event))
        return None if span is None else telemetry.traceparent_of(span)


_UNTRACED = MessageSpans()


@contextmanager
def message_spans(events: Sequence[faust.EventT], agent: str) -> Iterator[MessageSpans]:
    """A ``<agent> process`` span per message of ``events``, ended when the batch is done."""
    if not telemetry.active():
        yield _UNTRACED
        return
    spans: dict[int, telemetry.Span] = {}
    for event in events:
        message = event.message
        spans[id(event)] = telemetry.start_consumer_span(
            f"{agent} process",
            message.headers,
            {
                **telemetry.record_attributes(message.topic, message.partition, message.offset),
                "messaging.batch.message_count": len(events),
            },
        )
    try:
        yield MessageSpans(spans)
    finally:
        for span in spans.values():
            span.end()


async def apply_in_batch(
    events: Sequence[faust.EventT],
    *,
    decode: Callable[[faust.EventT], D],
    apply_all: Callable[[list[D]], Awaitable[object]],
    apply_one: Callable[[faust.EventT], Awaitable[None]],
    dead_letters: DeadLetters,
    agent: str,
    what: str,
) -> None:
    """Decode every event and apply them all at once, waiting out a dependency that is down.

    An event that cannot be decoded goes to the dead-letter topic with its error and the others
    go on. When the batch is refused for good (not unreachable: an item the dependency will not
    take), each decoded event is handed to ``apply_one``, which finds and dead-letters the item.
    """
    readable: list[tuple[faust.EventT, D]] = []
    for event in events:
        try:
            readable.append((event, decode(event)))
        except Exception as exc:  # unreadable: kept with its error, the rest go on
            await dead_letters.send(event, agent=agent, error=exc)
    if not readable:
        return
    decoded = [item for _, item in readable]
    try:
        await retry_transient(lambda: apply_all(decoded), what=what)
    except Exception:  # refused, not unreachable: one by one finds the item it refuses
        for event, _ in readable:
            await apply_one(event)


class BatchFanOut(Generic[M]):
    """A batch of domain events: the messages each leads to (``find``, from the event's bytes),
    then all of them published at once and in order (``publish``), each carrying its event's
    ``traceparent``.

    An event that cannot be read or looked up goes to the dead-letter topic (as ``agent``, with
    its error) and the others go on; when publishing the batch fails for good, each event is
    fanned out on its own, which finds the one to dead-letter.
    """

    def __init__(
        self,
        *,
        find: Callable[[bytes], Awaitable[Sequence[M]]],
        publish: Callable[[list[M]], Awaitable[object]],
        dead_letters: DeadLetters,
        agent: str,
        what: str,
    ) -> None:
        self._find = find
        self._publish = publish
        self._dead_letters = dead_letters
        self._agent = agent
        self._what = what

    async def one(self, event: faust.EventT, traceparent: str | None = None) -> None:
        """Fan out one event (the batch's way round an event it cannot publish with the rest)."""
        try:
            found = await retry_transient(partial(self._find, event.value), what=self._what)
            messages = [message.traced(traceparent) for message in found]
            if messages:
                await retry_transient(partial(self._publish, messages), what=self._what)
        except Exception as exc:  # unreadable or refused: kept on the DLQ with its error
            await self._dead_letters.send(event, agent=self._agent, error=exc)

    async def batch(self, events: Sequence[faust.EventT]) -> None:
        with message_spans(events, self._agent) as spans:
            messages: list[M] = []
            for event in events:
                try:
                    found = await retry_transient(partial(self._find, event.value), what=self._what)
                except Exception as exc:  # unreadable or refused: kept on the DLQ with its error
                    await self._dead_letters.send(event, agent=self._agent, error=exc)
                    continue
                messages += [message.traced(spans.traceparent(event)) for message in found]
            if not messages:
                return
            try:
                await retry_transient(partial(self._publish, messages), what=self._what)
            except Exception:  # refused for good: find the event it belongs to
                for event in events:
                    await self.one(event, spans.traceparent(event))
