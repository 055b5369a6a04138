"""The event store's monthly partitions as PostgreSQL has them (migrations/0024).

Made by ``event_store_add_partitions()`` in the database, so the leader's timer, the operator's
command and the migration make them the same way; read from the catalog by name
(``event_store_y2026m12``: December 2026, UTC).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from app.adapters.postgres.pool import SqlStore
from app.services.event_store_upkeep import WalArchiver

_MONTH_NAME: Final = re.compile(r"^event_store_y(\d{4})m(\d{2})$")
DEFAULT_PARTITION: Final = "event_store_default"

# Every partition of event_store, its size and the planner's row estimate (exact counts would
# read every month; the default partition, which should be empty, is counted exactly apart).
_PARTITIONS: Final = """
SELECT c.relname, pg_total_relation_size(c.oid), greatest(c.reltuples, 0)::bigint
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'event_store'::regclass
ORDER BY c.relname
"""


def partition_month(name: str) -> date | None:
    """The month a partition holds, from its name; None for the default partition."""
    found = _MONTH_NAME.match(name)
    return date(int(found[1]), int(found[2]), 1) if found else None


def partition_name(month: date) -> str:
    return f"event_store_y{month.year:04d}m{month.month:02d}"


@dataclass(frozen=True)
class Partition:
    name: str
    month: date | None  # None: the default partition
    bytes: int
    events: int  # the planner's estimate; exact for the default partition


@dataclass(frozen=True)
class ArchivedMonth:
    month: date
    file: str
    sha256: str
    events: int
    first_seq: int | None
    last_seq: int | None
    archived_at: datetime
    archived_by: str
    restored_at: datetime | None


class PostgresEventStoreMonths(SqlStore):
    async def add_ahead(self, months_ahead: int) -> list[str]:
        async with self._transaction() as cur:
            await cur.execute("SELECT * FROM event_store_add_partitions(%s)", (months_ahead,))
            return [str(name) for (name,) in await cur.fetchall()]

    async def partitions(self) -> list[Partition]:
        rows = await self._fetchall(_PARTITIONS, ())
        default_rows = await self.default_partition_rows()
        return [
            Partition(
                name=str(name),
                month=partition_month(str(name)),
                bytes=int(size),
                events=default_rows if name == DEFAULT_PARTITION else int(estimate),
            )
            for name, size, estimate in rows
        ]

    async def partitioned_months(self) -> list[date]:
        rows = await self._fetchall(_PARTITIONS, ())
        return sorted(month for (name, *_) in rows if (month := partition_month(str(name))))

    async def default_partition_rows(self) -> int:
        row = await self._fetchone("SELECT count(*) FROM event_store_default", ())
        return int(row[0]) if row else 0

    async def wal_archiver(self) -> WalArchiver:
        row = await self._fetchone(
            "SELECT archived_count, failed_count, last_archived_time, last_failed_time"
            " FROM pg_stat_archiver",
            (),
        )
        assert row is not None  # the view always has its one row
        return WalArchiver(int(row[0]), int(row[1]), row[2], row[3])

    async def archives(self) -> list[ArchivedMonth]:
        rows = await self._fetchall(
            "SELECT month, file, sha256, events, first_seq, last_seq, archived_at, archived_by,"
            " restored_at FROM event_store_archives ORDER BY month",
            (),
        )
        return [_archived(row) for row in rows]

    async def months_archived_away(self) -> list[date]:
        """Archived months not restored: their events are not in the store."""
        rows = await self._fetchall(
            "SELECT month FROM event_store_archives WHERE restored_at IS NULL ORDER BY month", ()
        )
        return [month for (month,) in rows]


def _archived(row: Sequence[Any]) -> ArchivedMonth:
    month, file, sha256, events, first_seq, last_seq, archived_at, archived_by, restored_at = row
    return ArchivedMonth(
        month, file, sha256, int(events), first_seq, last_seq, archived_at, archived_by, restored_at
    )
