"""The live status agent: domain events → the customers' live invoice views in Redis.

Every worker runs it on its share of ``crypto-checkout.domain-events``; each event is folded into
its invoice's view (app/services/live_view.py) and the new view published to the WebSocket and
SSE clients of every worker (app/adapters/redis/live_views.py).

While Redis is unreachable (refused, timed out, still loading its data after a restart) the agent
waits for it, however long (``REDIS_OUTAGE_RETRY``), and applies the event then: every event of
the partition would fail alike, and one given up would leave its customer's page at a stale
status for good (a paid invoice shown pending). A message that cannot be parsed, or that still
cannot be applied after ``LIVE_VIEW_RETRY`` for another reason (its view changing under it at
every attempt, an error answer from Redis), goes to the dead-letter topic with its error, so one
invoice's view cannot hold up the partition for long. Replaying it later is safe: applying an
event twice changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final

import faust
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.adapters import telemetry
from app.domain.events import parse_event
from app.runtime.dead_letters import DeadLetters
from app.runtime.retry import DEPENDENCY_WAITS, RetryPolicy
from app.services.errors import LiveViewUnavailable
from app.services.ports import LiveViews

NAME: Final = "live_status"
# Six attempts, waiting at most 1, 2, 4, 5 and 5 s between them (jittered: 8.5 s on average).
LIVE_VIEW_RETRY: Final = RetryPolicy(attempts=6, initial_delay=1.0, max_delay=5.0)
# Redis unreachable: until it answers, at most 5 s between attempts.
REDIS_OUTAGE_RETRY: Final = RetryPolicy(initial_delay=0.5, max_delay=5.0)


def redis_unreachable(error: BaseException) -> str | None:
    """No answer from Redis at all (BusyLoadingError, after a restart, is a ConnectionError)."""
    if isinstance(error, RedisConnectionError | RedisTimeoutError | OSError):
        return type(error).__name__
    return None


def redis_down(error: BaseException) -> str | None:
    """Another Redis error, or the view changed under us too often: worth a few more attempts."""
    if redis_unreachable(error) is None and isinstance(error, RedisError | LiveViewUnavailable):
        return type(error).__name__
    return None


class LiveStatusAgent:
    def __init__(
        self,
        views: LiveViews,
        dead_letters: DeadLetters,
        *,
        retry: RetryPolicy = LIVE_VIEW_RETRY,
        outage: RetryPolicy = REDIS_OUTAGE_RETRY,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._views = views
        self._dead_letters = dead_letters
        self._retry = retry
        self._outage = outage
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
            await self._outage.run(
                lambda: self._retry.run(
                    lambda: self._views.apply(domain_event),
                    what="live view",
                    classify=redis_down,
                    sleep=self._sleep,
                ),
                what="live view (Redis unreachable)",
                classify=redis_unreachable,
                sleep=self._sleep,
                waits=DEPENDENCY_WAITS,
            )
        except Exception as exc:  # unreadable, or not applicable: kept with its error
            await self._dead_letters.send(event, agent=NAME, error=exc)


def register(app: faust.App, topic: faust.TopicT, agent: LiveStatusAgent) -> faust.types.AgentT:
    async def live_status(stream: faust.StreamT[Any]) -> None:
        """Keeps the customers' live invoice views in Redis and pushes their changes."""
        async for event in stream.events():
            await agent.handle(event)

    return app.agent(topic, name=NAME, concurrency=1)(live_status)
