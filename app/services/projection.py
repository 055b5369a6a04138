"""Project an event: every domain event into the event store and the read models.

The projection agent applies the events it reads in batches, each batch in one PostgreSQL
transaction (app/adapters/postgres/projections.py); both writes are idempotent, so a redelivered
event changes nothing.
``checkout_projection_lag_seconds`` is how far the lists (GET /api/v1/invoices) trail the
invoices: from an event's ``occurred_at`` to its projection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from prometheus_client import Histogram

from app.domain.events import DomainEvent
from app.services.ports import Projected, ProjectionStore

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
        _observe_lag([event])

    async def project_batch(self, batch: Sequence[Projected]) -> None:
        """``project`` every event of ``batch`` in order, in one transaction: all or none."""
        await self._store.apply_batch(batch)
        _observe_lag([event for event, _, _ in batch])


def _observe_lag(events: Iterable[DomainEvent]) -> None:
    now = datetime.now(UTC)
    for event in events:
        PROJECTION_LAG.observe(max(0.0, (now - event.occurred_at).total_seconds()))
