"""Publish each day's figures on ``crypto-checkout.analytics`` (app/domain/analytics.py).

One worker — Faust's leader — calls ``publish`` every ``ANALYTICS_INTERVAL`` seconds
(agents/analytics.py): a snapshot of the current UTC day, and of the day before while the new
day is younger than two intervals, so the last figures of a day are published after midnight.
Snapshots are read from the read models, so publishing the same day again is harmless.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from prometheus_client import Counter

from app.domain.analytics import AnalyticsMessage, MerchantDailyMetrics, PlatformDailyMetrics
from app.services.ports import AnalyticsReads, AnalyticsSink

PUBLISHED = Counter(
    "checkout_analytics_messages_published",
    "Messages published on crypto-checkout.analytics",
    ["message_type"],
)


class AnalyticsPublication:
    def __init__(self, reads: AnalyticsReads, sink: AnalyticsSink, *, interval: float) -> None:
        self._reads = reads
        self._sink = sink
        self._interval = interval

    def days_at(self, now: datetime) -> list[date]:
        """The days to publish at ``now``: today, and yesterday just after midnight."""
        today = now.astimezone(UTC).date()
        since_midnight = now - datetime.combine(today, time(), tzinfo=UTC)
        if since_midnight < timedelta(seconds=2 * self._interval):
            return [today - timedelta(days=1), today]
        return [today]

    async def publish(self, now: datetime) -> list[AnalyticsMessage]:
        """Publish the snapshots of ``days_at(now)``; returns them once Kafka has them."""
        messages: list[AnalyticsMessage] = []
        for day in self.days_at(now):
            messages += await self.snapshot(day, now)
        await self._sink.publish_analytics(messages)
        for message in messages:
            PUBLISHED.labels(message_type=type(message).__name__).inc()
        return messages

    async def snapshot(self, day: date, now: datetime) -> list[AnalyticsMessage]:
        merchants = [
            MerchantDailyMetrics(
                day=day,
                as_of=now,
                merchant_id=row["merchant_id"],
                gross_volume=int(row["gross_volume"]),
                fees=int(row["fees"]),
                net_volume=int(row["net_volume"]),
                settlements=int(row["settlements"]),
                invoices_created=int(row["invoices_created"]),
                invoices_paid=int(row["invoices_paid"]),
                invoices_expired=int(row["invoices_expired"]),
            )
            for row in await self._reads.merchant_days(day)
        ]
        return [*merchants, platform_metrics(day, now, await self._reads.platform_day(day))]


def platform_metrics(day: date, now: datetime, row: dict[str, Any]) -> PlatformDailyMetrics:
    """The platform's message from its day's row (zeros for a day without activity)."""

    def count(name: str) -> int:
        return int(row.get(name) or 0)

    detected, confirmed = count("payments_detected"), count("payments_confirmed")
    p95_ms = row.get("p95_confirmation_ms")
    return PlatformDailyMetrics(
        day=day,
        as_of=now,
        payments_detected=detected,
        payments_confirmed=confirmed,
        payments_failed=count("payments_failed"),
        payments_orphaned=count("payments_orphaned"),
        failure_rate=round(count("payments_failed") / detected, 4) if detected else None,
        mean_confirmation_seconds=(
            round(count("confirmation_ms_total") / confirmed / 1000, 3) if confirmed else None
        ),
        p95_confirmation_seconds=None if p95_ms is None else round(int(p95_ms) / 1000, 3),
        settlements=count("settlements"),
        gross_volume=count("gross_volume"),
        fees=count("fees"),
        net_volume=count("net_volume"),
    )
