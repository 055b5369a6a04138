"""The event store's months: partitions made ahead, the retention rule for archiving, and the
figures that say whether both hold (docs/operations.md, "The event store's lifecycle").

``event_store`` is partitioned by the month an event was recorded (UTC;
migrations/0024_event_store_partitions.sql). The leader's timer (agents/event_partitions.py)
keeps this month and the next ``months_ahead`` made, so an insert never falls back to the
default partition while the job runs; should it stop for months, the rows wait there (nothing
fails) and move into their month when it is made. The same tick reads PostgreSQL's WAL archiver,
whose failures put the backups' RPO at risk (docs/operations.md, "Backups and recovery").

Months are first days of months (``date``); "this month" is the current UTC month.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, Protocol

from prometheus_client import Counter, Gauge

logger = logging.getLogger(__name__)

# Archiving leaves at least this many whole months online by default; less is refused below
# MIN_RETENTION_MONTHS (the read models' rebuild and webhook replays read the store).
DEFAULT_RETENTION_MONTHS: Final = 24
MIN_RETENTION_MONTHS: Final = 3

MONTHS_AHEAD = Gauge(
    "checkout_event_store_months_ahead",
    "Months after the current one with an event_store partition made (the job keeps 3)",
)
DEFAULT_PARTITION_ROWS = Gauge(
    "checkout_event_store_default_partition_rows",
    "Events in event_store's default partition: recorded in a month without its partition",
)
WAL_ARCHIVE_FAILING = Gauge(
    "checkout_postgres_wal_archive_failing",
    "1 while PostgreSQL's last WAL archive attempt failed (pg_stat_archiver), else 0",
)
WAL_ARCHIVE_FAILURES = Gauge(
    "checkout_postgres_wal_archive_failures",
    "WAL segments PostgreSQL failed to archive since its statistics were reset",
)
WAL_LAST_ARCHIVED = Gauge(
    "checkout_postgres_wal_last_archived_timestamp_seconds",
    "When PostgreSQL last archived a WAL segment (0: never, or archiving is off)",
)
MEASURED = Gauge(
    "checkout_event_store_measured_timestamp_seconds",
    "When the leader last made the months ahead and read these figures",
)
UPKEEP_FAILURES = Counter(
    "checkout_event_store_upkeep_failures",
    "Runs of the event store's upkeep that failed (the next run tries again)",
    ["error"],
)


@dataclass(frozen=True)
class WalArchiver:
    archived: int
    failed: int
    last_archived_at: datetime | None
    last_failed_at: datetime | None

    @property
    def failing(self) -> bool:
        """The latest attempt failed: PostgreSQL keeps the segment and retries it."""
        if self.last_failed_at is None:
            return False
        return self.last_archived_at is None or self.last_failed_at > self.last_archived_at


class EventStoreMonths(Protocol):
    async def add_ahead(self, months_ahead: int) -> list[str]:
        """Make the partitions of this month and the next ``months_ahead``; the names made."""
        ...

    async def partitioned_months(self) -> list[date]:
        """The months that have a partition (archived months have none)."""
        ...

    async def default_partition_rows(self) -> int: ...

    async def wal_archiver(self) -> WalArchiver: ...


def month_of(moment: date) -> date:
    return date(moment.year, moment.month, 1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def months_covered_ahead(months: list[date], today: date) -> int:
    """How many months after ``today``'s have a partition, counting until the first gap."""
    have = set(months)
    ahead, month = 0, add_months(month_of(today), 1)
    while month in have:
        ahead += 1
        month = add_months(month, 1)
    return ahead


def oldest_kept_month(today: date, retention_months: int) -> date:
    """The first month ``retention_months`` keeps online: the current month and the
    ``retention_months`` whole months before it are never archived."""
    return add_months(month_of(today), -retention_months)


def archivable(month: date, today: date, retention_months: int) -> bool:
    return month_of(month) < oldest_kept_month(today, retention_months)


class EventStoreUpkeep:
    def __init__(self, months: EventStoreMonths, months_ahead: int) -> None:
        self._months = months
        self._months_ahead = months_ahead

    async def run(self, now: datetime) -> list[str]:
        """One tick: make what is missing, then publish the figures; the partitions made."""
        made = await self._months.add_ahead(self._months_ahead)
        for name in made:
            logger.info("event store: made partition %s", name)
        MONTHS_AHEAD.set(months_covered_ahead(await self._months.partitioned_months(), now))
        DEFAULT_PARTITION_ROWS.set(await self._months.default_partition_rows())
        archiver = await self._months.wal_archiver()
        WAL_ARCHIVE_FAILING.set(1 if archiver.failing else 0)
        WAL_ARCHIVE_FAILURES.set(archiver.failed)
        archived_at = archiver.last_archived_at
        WAL_LAST_ARCHIVED.set(archived_at.timestamp() if archived_at is not None else 0)
        MEASURED.set(now.timestamp())
        return made
