"""Retrying what failed because a dependency blinked, never what failed because it is wrong.

A money-moving agent that cannot reach Kafka, PostgreSQL or Redis keeps the message and tries
again with backoff, for as long as it takes: skipping it would lose a payment, and the partition
must stay in order. A message that is wrong (a domain refusal, malformed JSON) is not retried:
it goes to the dead-letter topic. Operators watch ``checkout_transient_retries_total``; a rising
count names the dependency to look at in the worker's log.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg2
import redis.exceptions
from aiokafka.errors import KafkaError
from prometheus_client import Counter

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
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
    "Operations retried after a dependency failed (Kafka, PostgreSQL, Redis)",
    ["operation", "error"],
)


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    first_delay: float = 0.1,
    max_delay: float = 30.0,
    max_attempts: int | None = None,
) -> T:
    """Run ``operation`` until it succeeds or fails with a non-transient error.

    ``max_attempts=None`` retries for ever (the money path); otherwise the last transient error
    is raised after that many attempts.
    """
    delay = first_delay
    attempt = 0
    while True:
        attempt += 1
        try:
            return await operation()
        except TRANSIENT_ERRORS as exc:
            RETRIES.labels(operation=what, error=type(exc).__name__).inc()
            if max_attempts is not None and attempt >= max_attempts:
                raise
            logger.warning(
                "%s failed (attempt %d: %s: %s); retrying in %.1f s",
                what,
                attempt,
                type(exc).__name__,
                exc,
                delay,
            )
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, max_delay)
