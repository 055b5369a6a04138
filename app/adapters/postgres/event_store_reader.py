"""Reading the event store in its insertion order (``seq``), for ``checkout events replay``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.adapters.postgres.pool import Connections


@dataclass(frozen=True)
class EventFilter:
    after_seq: int = 0
    since: datetime | None = None
    until: datetime | None = None
    event_types: tuple[str, ...] = ()
    aggregate_id: str | None = None
    merchant_id: str | None = None


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    aggregate_id: str
    payload: str  # JSON text (jsonb: the key order may differ from the bytes published)


# One statement for every filter (an unset one is NULL and matches everything).
_BATCH = """
SELECT seq, aggregate_id, payload::text FROM event_store
WHERE seq > %(after)s
  AND (%(since)s::timestamptz IS NULL OR occurred_at >= %(since)s::timestamptz)
  AND (%(until)s::timestamptz IS NULL OR occurred_at < %(until)s::timestamptz)
  AND (%(types)s::text[] IS NULL OR event_type = ANY(%(types)s::text[]))
  AND (%(aggregate)s::text IS NULL OR aggregate_id = %(aggregate)s::text)
  AND (%(merchant)s::text IS NULL OR merchant_id = %(merchant)s::text)
ORDER BY seq
LIMIT %(limit)s
"""


class EventStoreReader:
    def __init__(self, pool: Connections) -> None:
        self._pool = pool

    async def batch(self, chosen: EventFilter, after_seq: int, limit: int) -> list[StoredEvent]:
        """The next ``limit`` events matching ``chosen`` after ``after_seq``, by ``seq``."""
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                _BATCH,
                {
                    "after": max(after_seq, chosen.after_seq),
                    "since": chosen.since,
                    "until": chosen.until,
                    "types": list(chosen.event_types) or None,
                    "aggregate": chosen.aggregate_id,
                    "merchant": chosen.merchant_id,
                    "limit": limit,
                },
            )
            rows = await cur.fetchall()
        return [StoredEvent(int(seq), aggregate, payload) for seq, aggregate, payload in rows]
