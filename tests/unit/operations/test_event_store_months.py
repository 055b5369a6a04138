"""The event store's months (app/services/event_store_upkeep.py): month arithmetic, what the
retention lets an operator archive, the coverage the partition job keeps, the WAL archiver's
state, and the refusals of ``checkout events archive`` before it touches anything."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import click
import pytest
from click.testing import CliRunner

from app.adapters.postgres.event_partitions import partition_month, partition_name
from app.runtime.event_month_commands import add_month_commands
from app.services import event_store_upkeep as upkeep
from app.services.event_store_upkeep import (
    EventStoreUpkeep,
    WalArchiver,
    add_months,
    archivable,
    months_covered_ahead,
    oldest_kept_month,
)
from app.settings import Settings

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("month", "count", "expected"),
    [
        (date(2026, 1, 1), 1, date(2026, 2, 1)),
        (date(2026, 12, 1), 1, date(2027, 1, 1)),
        (date(2026, 1, 1), -1, date(2025, 12, 1)),
        (date(2026, 3, 1), -26, date(2024, 1, 1)),
        (date(2026, 11, 1), 14, date(2028, 1, 1)),
    ],
)
def test_months_add_across_years(month: date, count: int, expected: date) -> None:
    assert add_months(month, count) == expected


def test_the_retention_keeps_this_month_and_the_whole_months_before_it() -> None:
    today = date(2026, 12, 2)
    assert oldest_kept_month(today, 24) == date(2024, 12, 1)
    assert archivable(date(2024, 11, 1), today, 24)
    assert not archivable(date(2024, 12, 1), today, 24)
    assert not archivable(date(2026, 12, 1), today, 3)
    assert archivable(date(2026, 8, 1), today, 3)
    assert not archivable(date(2026, 9, 1), today, 3)


def test_coverage_counts_the_months_ahead_until_the_first_gap() -> None:
    today = date(2026, 12, 31)
    months = [date(2026, 12, 1), date(2027, 1, 1), date(2027, 2, 1), date(2027, 4, 1)]
    assert months_covered_ahead(months, today) == 2
    assert months_covered_ahead([date(2026, 12, 1)], today) == 0
    assert months_covered_ahead([], today) == 0


def test_partition_names_and_months_match() -> None:
    assert partition_name(date(2027, 3, 1)) == "event_store_y2027m03"
    assert partition_month("event_store_y2027m03") == date(2027, 3, 1)
    assert partition_month("event_store_default") is None
    assert partition_month("event_store_y2027m3") is None


@pytest.mark.parametrize(
    ("archived", "failed", "failing"),
    [
        (None, None, False),  # never archived, never failed (or archiving is off)
        (T0, None, False),
        (None, T0, True),
        (T0, T0.replace(minute=1), True),  # the last attempt failed
        (T0.replace(minute=2), T0.replace(minute=1), False),  # failed, then archived
    ],
)
def test_the_wal_archiver_is_failing_while_its_last_attempt_failed(
    archived: datetime | None, failed: datetime | None, failing: bool
) -> None:
    assert WalArchiver(3, 1, archived, failed).failing is failing


class Months:
    def __init__(self) -> None:
        self.months = [date(2025, 12, 1), date(2026, 1, 1)]
        self.asked: list[int] = []

    async def add_ahead(self, months_ahead: int) -> list[str]:
        self.asked.append(months_ahead)
        made = [add_months(date(2026, 1, 1), n) for n in range(1, months_ahead + 1)]
        self.months += made
        return [partition_name(month) for month in made]

    async def partitioned_months(self) -> list[date]:
        return self.months

    async def default_partition_rows(self) -> int:
        return 4

    async def wal_archiver(self) -> WalArchiver:
        return WalArchiver(10, 2, T0, T0.replace(hour=1))


def test_a_tick_makes_the_months_ahead_and_publishes_the_figures() -> None:
    months = Months()
    made = asyncio.run(EventStoreUpkeep(months, 3).run(T0))
    assert made == ["event_store_y2026m02", "event_store_y2026m03", "event_store_y2026m04"]
    assert months.asked == [3]
    assert upkeep.MONTHS_AHEAD._value.get() == 3
    assert upkeep.DEFAULT_PARTITION_ROWS._value.get() == 4
    assert upkeep.WAL_ARCHIVE_FAILING._value.get() == 1
    assert upkeep.WAL_ARCHIVE_FAILURES._value.get() == 2
    assert upkeep.WAL_LAST_ARCHIVED._value.get() == T0.timestamp()


def run_archive(*args: str) -> tuple[int, str]:
    group = click.Group("events")
    add_month_commands(group, Settings.from_env({}))
    result = CliRunner().invoke(group, ["archive", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--yes"], "name a --month or say --expired"),
        (["--month", "2020-01", "--expired", "--yes"], "name a --month or say --expired"),
        (["--month", "2020-01"], "add --yes"),
        (["--month", "2020-13", "--yes"], "'2020-13' is not a month like 2025-01"),
        (["--month", "20-01", "--yes"], "is not a month"),
        ([f"--month={datetime.now(UTC):%Y-%m}", "--yes"], "within the retention of 24 months"),
    ],
)
def test_archive_refuses_before_touching_anything(args: list[str], message: str) -> None:
    status, output = run_archive(*args)
    assert status == 2
    assert message in output
