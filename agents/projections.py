"""The projection agent: every domain event into the event store and the invoice read model.

It reads ``crypto-checkout.domain-events`` (sharing the consumer with the other agents on it) in
batches of up to ``BATCH_SIZE`` events or ``BATCH_WINDOW`` seconds, whichever comes first;
app/services/projection.py applies a batch in one PostgreSQL transaction. A block of payments
brings hundreds of events at once, and one commit for them all instead of one each is the
difference between PostgreSQL keeping up and not. The offsets of a batch are acknowledged only
after its transaction committed.

While PostgreSQL is unreachable it retries the batch for as long as it takes, keeping the
partitions in order. When PostgreSQL refuses the batch (an event it cannot record, such as a
second event claiming a taken aggregate version), the agent applies that batch's events one by
one, so only the refused event goes to the dead-letter topic with its error; an event that
cannot be read goes there before. Replaying a dead letter is safe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import faust

from app.domain.events import parse_event
from app.runtime.batches import apply_in_batch, batches, message_spans
from app.runtime.dead_letters import DeadLetters
from app.runtime.retry import retry_transient
from app.services.projection import Projection

NAME: Final = "projection_agent"
BATCH_SIZE: Final = 500
# What a batch may add to the lists' lag (GET /api/v1/invoices); the money path does not wait.
BATCH_WINDOW: Final = 0.05


class ProjectionAgent:
    def __init__(self, projection: Projection, dead_letters: DeadLetters) -> None:
        self._projection = projection
        self._dead_letters = dead_letters

    async def handle(self, event: faust.EventT) -> None:
        """Project one event, or dead-letter it with the reason."""
        message = event.message
        try:
            domain_event = parse_event(event.value)
            await retry_transient(
                lambda: self._projection.project(domain_event, message.partition, message.offset),
                what="projection",
            )
        except Exception as exc:  # an unreadable or refused event: kept with its error
            await self._dead_letters.send(event, agent=NAME, error=exc)

    async def handle_batch(self, events: Sequence[faust.EventT]) -> None:
        """Project ``events`` in one transaction; one by one when PostgreSQL refuses the batch.

        With tracing on, each event has a ``projection_agent process`` span in its trace.
        """
        with message_spans(events, NAME):
            await apply_in_batch(
                events,
                decode=lambda e: (parse_event(e.value), e.message.partition, e.message.offset),
                apply_all=self._projection.project_batch,
                apply_one=self.handle,
                dead_letters=self._dead_letters,
                agent=NAME,
                what="projection batch",
            )


def register(
    app: faust.App,
    topic: faust.TopicT,
    agent: ProjectionAgent,
    hold: Callable[[], Awaitable[None]],
) -> faust.types.AgentT:
    async def projection_agent(stream: faust.StreamT[Any]) -> None:
        """Records every domain event in the event store and the invoice read model."""
        async for events in batches(stream, BATCH_SIZE, BATCH_WINDOW):
            await hold()
            await agent.handle_batch(events)

    return app.agent(topic, name=f"{__name__}.{NAME}", concurrency=1)(projection_agent)
