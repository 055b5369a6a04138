"""Read a stream in batches, acknowledging a batch only after the agent is done with it.

Faust's ``Stream.take_events(max_, within)`` buffers up to ``max_`` events, hands them over when
the buffer is full or ``within`` seconds have passed, and acknowledges them after the agent's
loop body for the batch has finished — so a batch's offsets commit only after what it caused is
durable, as for one event at a time. It waits the whole window when fewer events come, so the
window is the latency a batch adds. (``StreamT``, the type agents are given, does not declare
it: faust-streaming 0.15 has it on ``Stream`` only.) ``apply_in_batch`` is what an agent then
does with a batch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import faust

from app.runtime.dead_letters import DeadLetters
from app.runtime.retry import retry_transient

D = TypeVar("D")


def batches(stream: faust.StreamT[Any], size: int, within: float) -> AsyncIterator[Sequence[Any]]:
    """The events of ``stream``, ``size`` at most per batch, after ``within`` s at the latest."""
    return cast(faust.Stream[Any], stream).take_events(size, within=within)


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
