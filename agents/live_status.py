"""The live status agent: domain events → the customers' live invoice views in Redis.

Every worker runs it on its share of ``crypto-checkout.domain-events``; each event is merged into
its invoice's view (app/adapters/redis/live_views.py) and the new view is published to the WebSocket
and SSE clients of every worker. A message that cannot be parsed, or that still cannot be applied
after a few retries (Redis down for longer than ``RETRY_DELAYS`` adds up to), goes to
``crypto-checkout.domain-events.dlq`` with its error. Replaying it later is safe: applying an event
twice changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from pydantic import ValidationError
from redis.exceptions import RedisError

from app.adapters.redis.live_views import LiveViewError, live_views_for
from app.domain.errors import CheckoutError
from app.domain.events import DomainEvent, parse_event
from app.faust_app import app, resources, topics
from app.runtime.dead_letters import send_to_dead_letter

logger = logging.getLogger(__name__)

AGENT: Final = "live_status"
SOURCE: Final = "crypto-checkout.domain-events"
domain_events = topics[SOURCE]
dead_letters = topics[f"{SOURCE}.dlq"]

# Redis restarts or fails over in seconds; past ~9 s the event is dead-lettered so one invoice's
# view cannot hold up the partition for long. An operator replays the DLQ once Redis is back.
RETRY_DELAYS: Final = (0.2, 0.5, 1.0, 2.5, 5.0)
RETRIABLE: Final = (RedisError, OSError, LiveViewError)
DEAD_LETTER_ATTEMPTS: Final = 3


async def apply_with_retries(
    apply: Callable[[DomainEvent], Awaitable[Any]],
    event: DomainEvent,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """``apply(event)``, retried after ``RETRY_DELAYS`` while Redis is unreachable."""
    for delay in RETRY_DELAYS:
        try:
            await apply(event)
        except RETRIABLE as exc:
            logger.warning(
                "%s: %s %s not applied (%s: %s); retrying in %.1f s",
                AGENT,
                event.event_type,
                event.event_id,
                type(exc).__name__,
                exc,
                delay,
            )
            await sleep(delay)
        else:
            return
    await apply(event)


async def process(
    apply: Callable[[DomainEvent], Awaitable[Any]],
    dead_letter: Callable[..., Awaitable[None]],
    *,
    key: bytes | None,
    value: bytes | None,
    partition: int | None,
    offset: int | None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Handle one message: apply it, or dead-letter it with its error. Never raises."""
    try:
        event = parse_event(value or b"")
        await apply_with_retries(apply, event, sleep=sleep)
    except (ValidationError, CheckoutError, *RETRIABLE) as exc:
        await _dead_letter(dead_letter, exc, key, value, partition, offset, sleep)
    except Exception as exc:  # a bug: the message is kept on the DLQ, never dropped
        logger.exception("%s: unexpected error at %s[%s]@%s", AGENT, SOURCE, partition, offset)
        await _dead_letter(dead_letter, exc, key, value, partition, offset, sleep)


async def _dead_letter(
    dead_letter: Callable[..., Awaitable[None]],
    error: BaseException,
    key: bytes | None,
    value: bytes | None,
    partition: int | None,
    offset: int | None,
    sleep: Callable[[float], Awaitable[None]],
) -> None:
    for attempt in range(1, DEAD_LETTER_ATTEMPTS + 1):
        try:
            await dead_letter(
                agent=AGENT,
                error=error,
                key=key,
                value=value,
                source_topic=SOURCE,
                partition=partition,
                offset=offset,
            )
        except Exception:
            logger.exception("%s: dead-lettering attempt %d failed", AGENT, attempt)
            await sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
        else:
            return
    # Kafka refuses the DLQ too. The live view is a projection (the invoice tables and the
    # read model hold the truth), so the agent goes on; this line is the operator's record.
    logger.critical(
        "%s: LOST live update %s[%s]@%s (key %r): %s: %s",
        AGENT,
        SOURCE,
        partition,
        offset,
        key,
        type(error).__name__,
        error,
    )


async def _send_dead_letter(**fields: Any) -> None:
    await send_to_dead_letter(dead_letters, **fields)


@app.agent(domain_events, name=AGENT, concurrency=1)
async def live_status(stream: Any) -> None:
    async for event in stream.events():
        message = event.message
        views = live_views_for(resources.redis)
        await process(
            views.apply,
            _send_dead_letter,
            key=event.key,
            value=event.value,
            partition=message.partition,
            offset=message.offset,
        )
