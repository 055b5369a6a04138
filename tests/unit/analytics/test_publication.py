"""The analytics snapshots: which days, and the messages built from the read models' rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import pytest

from app.domain.analytics import AnalyticsMessage, MerchantDailyMetrics, PlatformDailyMetrics
from app.services.analytics import AnalyticsPublication

pytestmark = pytest.mark.unit

DAY = date(2026, 12, 1)


class MemoryReports:
    """The read models' rows of each day (micro-USDT, ms), as a test sets them."""

    def __init__(self) -> None:
        self.days: dict[str, list[dict[str, Any]]] = {}
        self.platform_days: dict[date, dict[str, Any]] = {}

    async def merchant_days(self, day: date) -> list[dict[str, Any]]:
        return [
            {"merchant_id": merchant_id, **row}
            for merchant_id, rows in sorted(self.days.items())
            for row in rows
            if row["day"] == day
        ]

    async def platform_day(self, day: date) -> dict[str, Any]:
        return self.platform_days.get(day, {})


class Sink:
    def __init__(self) -> None:
        self.published: list[list[AnalyticsMessage]] = []

    async def publish_analytics(self, messages: Sequence[AnalyticsMessage]) -> None:
        self.published.append(list(messages))


def publication(reads: MemoryReports, sink: Sink) -> AnalyticsPublication:
    return AnalyticsPublication(reads, sink, interval=300)


def test_the_day_before_is_published_again_just_after_midnight() -> None:
    days = publication(MemoryReports(), Sink()).days_at
    assert days(datetime(2026, 12, 1, 0, 9, 59, tzinfo=UTC)) == [date(2026, 11, 30), DAY]
    assert days(datetime(2026, 12, 1, 0, 10, 0, tzinfo=UTC)) == [DAY]
    assert days(datetime(2026, 12, 1, 23, 59, tzinfo=UTC)) == [DAY]


async def test_a_snapshot_has_every_active_merchant_and_the_platform() -> None:
    reads, sink = MemoryReports(), Sink()
    reads.days = {
        "mer_b": [{"day": DAY, "gross_volume": 10_000_000, "fees": 100_000,
                   "net_volume": 9_900_000, "settlements": 1, "invoices_created": 3,
                   "invoices_paid": 1, "invoices_expired": 1}],
        "mer_a": [{"day": date(2026, 11, 30), "gross_volume": 1, "fees": 0, "net_volume": 1,
                   "settlements": 1, "invoices_created": 1, "invoices_paid": 1,
                   "invoices_expired": 0}],
    }  # fmt: skip
    reads.platform_days[DAY] = {
        "payments_detected": 4, "payments_confirmed": 3, "payments_failed": 1,
        "payments_orphaned": 0, "confirmation_ms_total": 4_500, "p95_confirmation_ms": 3_000,
        "settlements": 1, "gross_volume": 10_000_000, "fees": 100_000, "net_volume": 9_900_000,
    }  # fmt: skip
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    messages = await publication(reads, sink).publish(now)

    assert sink.published == [messages]
    merchant, platform = messages
    assert isinstance(merchant, MerchantDailyMetrics) and isinstance(platform, PlatformDailyMetrics)
    assert (merchant.merchant_id, merchant.day, merchant.as_of) == ("mer_b", DAY, now)
    assert (merchant.gross_volume, merchant.invoices_created) == (10_000_000, 3)
    assert (platform.failure_rate, platform.mean_confirmation_seconds) == (0.25, 1.5)
    assert platform.p95_confirmation_seconds == 3.0 and platform.fees == 100_000


async def test_a_quiet_day_still_has_the_platform_message_with_no_rates() -> None:
    reads, sink = MemoryReports(), Sink()
    [platform] = await publication(reads, sink).publish(datetime(2026, 12, 1, 12, tzinfo=UTC))
    assert isinstance(platform, PlatformDailyMetrics)
    assert platform.payments_detected == 0 and platform.failure_rate is None
    assert platform.mean_confirmation_seconds is None and platform.p95_confirmation_seconds is None
