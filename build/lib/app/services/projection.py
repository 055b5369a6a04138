"""Project an event: every domain event into the event store and the read models.

The projection agent applies each event in one PostgreSQL transaction (app/adapters/postgres/
projections.py); both writes are idempotent, so a redelivered event changes nothing.
``checkout_projection_lag_seconds`` is how far the lists (GET /api/v1/invoices) trail the
invoices: from an event's ``occurred_at`` to its projection.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import Histogram

from app.domain.events import DomainEvent
from app.services.ports import ProjectionStore

PROJECTION_LAG = Histogram(
    "checkout_projection_lag_seconds",
    "From a domain event's occurred_at to its row in the event store and read models",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


class Projection:
    def __init__(self, store: ProjectionStore) -> None:
        self._store = store

    async def project(self, event: DomainEvent, partition: int | None, offset: int | None) -> None:
        """Record ``event`` (and where it was read from) and bring its read models up to date."""
        await self._store.apply(event, partition, offset)
        lag = (datetime.now(UTC) - event.occurred_at).total_seconds()
        PROJECTION_LAG.observe(max(0.0, lag))
