"""The projection agent: every domain event into the event store and the invoice read model.

It reads ``crypto-checkout.domain-events`` (sharing the consumer with the other agents on it)
and applies each event through app/adapters/postgres/projections.py in one PostgreSQL transaction.
While PostgreSQL is unreachable it retries the event for as long as it takes, keeping the partition
in order; an event that cannot be read or recorded (unknown type, a second event claiming a
taken aggregate version) goes to ``crypto-checkout.domain-events.dlq`` with its error. Replaying
a dead letter is safe: applying an event twice changes nothing.

``checkout_projection_lag_seconds`` is how far the lists (GET /api/v1/invoices) trail the
invoices: from an event's ``occurred_at`` to its projection.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Final

import faust
from prometheus_client import Histogram

from app.adapters.postgres.projections import apply
from app.domain.events import parse_event
from app.faust_app import app, resources, topics
from app.runtime.dead_letters import dead_letter_event
from app.runtime.retry import retry_transient
from app.runtime.shutdown import hold_if_stopping
from app.runtime.topics import DOMAIN_EVENTS, dead_letter

logger = logging.getLogger(__name__)

AGENT: Final = "projection_agent"

PROJECTION_LAG = Histogram(
    "checkout_projection_lag_seconds",
    "From a domain event's occurred_at to its row in the event store and read models",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


@app.agent(topics[DOMAIN_EVENTS.name], concurrency=1)
async def projection_agent(stream: faust.StreamT[Any]) -> None:
    async for event in stream.events():
        await hold_if_stopping()
        await process_domain_event(event)


async def process_domain_event(event: faust.EventT) -> None:
    message = event.message
    try:
        domain_event = parse_event(event.value)
        await retry_transient(
            lambda: apply(resources.db, domain_event, message.partition, message.offset),
            what="projection",
        )
    except Exception as exc:  # an unreadable or refused event: kept with its error, never lost
        await _dead_letter(event, exc)
        return
    lag = (datetime.now(UTC) - domain_event.occurred_at).total_seconds()
    PROJECTION_LAG.observe(max(0.0, lag))


async def _dead_letter(event: faust.EventT, error: BaseException) -> None:
    await hold_if_stopping()
    dlq = topics[dead_letter(DOMAIN_EVENTS).name]
    await dead_letter_event(dlq, event, agent=AGENT, error=error)
