"""Retrying what failed because a dependency blinked, never what failed because it is wrong.

One policy for the whole platform: exponential backoff with full jitter, for a bounded number of
attempts or for as long as it takes.

- The money path (``retry_transient``, ``FOREVER``): an agent that cannot reach Kafka, PostgreSQL
  or Redis keeps the message and tries again, for as long as it takes: skipping it would lose a
  payment, and the partition must stay in order.
- The Tron node client (app/adapters/tron/node.py): a few attempts, then ``NodeUnavailable``; the
  chain watcher's next poll resumes from its cursor.
- The live view (agents/live_status.py): Redis unreachable is waited out, however long; any
  other failure gets a few attempts, then the dead-letter topic, so one invoice's view cannot
  hold up the partition for long.

An agent waiting out a dependency holds its partition still; ``DEPENDENCY_WAITS`` counts the
operations doing so right now (``waits=``: the money path's and the live view's), so that the
stall watchdog (app/runtime/stall.py) does not take the wait for a Faust stall.

A failure is transient when ``classify`` names it (a metric label); anything else — a domain
refusal, malformed JSON, a bug — is raised at once, for the caller to dead-letter. Operators watch
``checkout_transient_retries_total``; a rising count names the operation and the error.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

import psycopg2
import redis.exceptions
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge

logger = logging.getLogger(__name__)

T = TypeVar("T")
Classify = Callable[[BaseException], str | None]

TRANSIENT_ERRORS: Final[tuple[type[BaseException], ...]] = (
    KafkaError,
    ConnectionError,
    TimeoutError,
    OSError,
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)

RETRIES = Counter(
    "checkout_transient_retries",
    "Operations retried after a dependency failed (Kafka, PostgreSQL, Redis, the Tron node)",
    ["operation", "error"],
)

WAITING = Gauge(
    "checkout_dependency_waits",
    "Agent operations waiting out an unreachable dependency right now (their partitions held)",
)

_jitter = random.SystemRandom()


class DependencyWaits:
    """How many operations of this process wait out a failed dependency now, and since when none
    has. The stall watchdog reads it: no progress while an agent waits is no stall."""

    def __init__(self, gauge: Gauge | None = None) -> None:
        self._waiting = 0
        self._last_ended = float("-inf")
        self._gauge = gauge

    def begin(self) -> None:
        self._waiting += 1
        if self._gauge is not None:
            self._gauge.inc()

    def end(self) -> None:
        self._waiting -= 1
        self._last_ended = time.monotonic()
        if self._gauge is not None:
            self._gauge.dec()

    def active(self, now: float, within: float) -> bool:
        """Whether an operation waits now or stopped waiting less than ``within`` s before
        ``now`` (monotonic)."""
        return self._waiting > 0 or now - self._last_ended < within


DEPENDENCY_WAITS: Final = DependencyWaits(WAITING)


def transient_error(error: BaseException) -> str | None:
    """The error's class name when a dependency failed (Kafka, PostgreSQL, Redis, the network)."""
    return type(error).__name__ if isinstance(error, TRANSIENT_ERRORS) else None


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently to try again. ``attempts=None`` tries until it succeeds."""

    attempts: int | None = None
    initial_delay: float = 0.1
    max_delay: float = 30.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts is not None and self.attempts < 1:
            raise ValueError("a retry policy makes at least one attempt")

    def delay(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(max, initial · multiplier^retry)] before retry n+1."""
        ceiling = min(self.max_delay, self.initial_delay * self.multiplier ** min(retry, 64))
        return _jitter.uniform(0.0, ceiling)

    async def run(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        what: str,
        classify: Classify = transient_error,
        on_retry: Callable[[BaseException, float], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        waits: DependencyWaits | None = None,
    ) -> T:
        """``operation()``; a transient failure is retried, the last one (if any) raised.
        ``waits`` counts it as waiting from its first failure until it returns or gives up."""
        retry = 0
        waiting = False
        try:
            while True:
                try:
                    return await operation()
                except Exception as exc:
                    reason = classify(exc)
                    if reason is None:
                        raise
                    RETRIES.labels(operation=what, error=reason).inc()
                    if self.attempts is not None and retry + 1 >= self.attempts:
                        raise
                    delay = self.delay(retry)
                    logger.warning(
                        "%s failed (attempt %d: %s: %s); retrying in %.1f s",
                        what,
                        retry + 1,
                        reason,
                        exc,
                        delay,
                    )
                    if on_retry is not None:
                        on_retry(exc, delay)
                    if waits is not None and not waiting:
                        waits.begin()
                        waiting = True
                    await sleep(delay)
                    retry += 1
        finally:
            if waits is not None and waiting:
                waits.end()


# The money path: until it succeeds.
FOREVER: Final = RetryPolicy()


async def retry_transient(operation: Callable[[], Awaitable[T]], *, what: str) -> T:
    """``operation()``, retried for as long as a dependency keeps failing (``FOREVER``)."""
    return await FOREVER.run(operation, what=what, waits=DEPENDENCY_WAITS)
