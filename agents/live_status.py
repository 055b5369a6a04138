"""The live status agent: domain events → the customers' live invoice views in Redis.

Every worker runs it on its share of ``crypto-checkout.domain-events``; each event is folded into
its invoice's view (app/services/live_view.py) and the new view published to the WebSocket and
SSE clients of every worker (app/adapters/redis/live_views.py). A message that cannot be parsed,
or that still cannot be applied after ``LIVE_VIEW_RETRY`` (Redis down for 17 s at the most),
goes to the dead-letter topic with its error, so one invoice's view cannot hold up the partition
for long. Replaying it later is safe: applying an event twice changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final

import faust
from redis.exceptions import RedisError

from app.adapters import telemetry
from app.domain.events import parse_event
from app.runtime.dead_letters import DeadLetters
from app.runtime.retry import RetryPolicy
from app.services.errors import LiveViewUnavailable
from app.services.ports import LiveViews

NAME: Final = "live_status"
# Six attempts, waiting at most 1, 2, 4, 5 and 5 s between them (jittered: 8.5 s on average).
LIVE_VIEW_RETRY: Final = RetryPolicy(attempts=6, initial_delay=1.0, max_delay=5.0)


def redis_down(error: BaseException) -> str | None:
    """Redis unreachable, or the view changed under us too often: worth another attempt."""
    if isinstance(error, RedisError | OSError | LiveViewUnavailable):
        return type(error).__name__
    return None


class LiveStatusAgent:
    def __init__(
        self,
        views: LiveViews,
        dead_letters: DeadLetters,
        *,
        retry: RetryPolicy = LIVE_VIEW_RETRY,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._views = views
        self._dead_letters = dead_letters
        self._retry = retry
        self._sleep = sleep

    async def handle(self, event: faust.EventT) -> None:
        """Apply one event to its invoice's live view (a ``live_status process`` span in its
        trace, with tracing on)."""
        if not telemetry.active():
            await self._handle(event)
            return
        message = event.message
        with telemetry.consumer_span(
            f"{NAME} process",
            message.headers,
            telemetry.record_attributes(message.topic, message.partition, message.offset),
        ):
            await self._handle(event)

    async def _handle(self, event: faust.EventT) -> None:
        try:
            domain_event = parse_event(event.value or b"")
            await self._retry.run(
                lambda: self._views.apply(domain_event),
                what="live view",
                classify=redis_down,
                sleep=self._sleep,
            )
        except Exception as exc:  # unreadable, or Redis down for too long: kept with its error
            await self._dead_letters.send(event, agent=NAME, error=exc)


def register(app: faust.App, topic: faust.TopicT, agent: LiveStatusAgent) -> faust.types.AgentT:
    async def live_status(stream: faust.StreamT[Any]) -> None:
        """Keeps the customers' live invoice views in Redis and pushes their changes."""
        async for event in stream.events():
            await agent.handle(event)

    return app.agent(topic, name=NAME, concurrency=1)(live_status)
