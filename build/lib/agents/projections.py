"""The projection agent: every domain event into the event store and the invoice read model.

It reads ``crypto-checkout.domain-events`` (sharing the consumer with the other agents on it);
app/services/projection.py applies each event in one PostgreSQL transaction. While PostgreSQL is
unreachable it retries the event for as long as it takes, keeping the partition in order; an
event that cannot be read or recorded (unknown type, a second event claiming a taken aggregate
version) goes to the dead-letter topic with its error. Replaying a dead letter is safe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import faust

from app.domain.events import parse_event
from app.runtime.dead_letters import DeadLetters
from app.runtime.retry import retry_transient
from app.services.projection import Projection

NAME: Final = "projection_agent"


class ProjectionAgent:
    def __init__(self, projection: Projection, dead_letters: DeadLetters) -> None:
        self._projection = projection
        self._dead_letters = dead_letters

    async def handle(self, event: faust.EventT) -> None:
        message = event.message
        try:
            domain_event = parse_event(event.value)
            await retry_transient(
                lambda: self._projection.project(domain_event, message.partition, message.offset),
                what="projection",
            )
        except Exception as exc:  # an unreadable or refused event: kept with its error
            await self._dead_letters.send(event, agent=NAME, error=exc)


def register(
    app: faust.App,
    topic: faust.TopicT,
    agent: ProjectionAgent,
    hold: Callable[[], Awaitable[None]],
) -> faust.types.AgentT:
    async def projection_agent(stream: faust.StreamT[Any]) -> None:
        """Records every domain event in the event store and the invoice read model."""
        async for event in stream.events():
            await hold()
            await agent.handle(event)

    return app.agent(topic, name=f"{__name__}.{NAME}", concurrency=1)(projection_agent)
