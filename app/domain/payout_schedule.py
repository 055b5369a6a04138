"""Scheduled payouts: a merchant's standing order to pay out the balance, daily or weekly.

Each schedule yields one payout per period at most: the period's key (``2026-12-02`` for a day,
``2026-W49`` for an ISO week) is the payout's idempotency key, so a timer firing twice, two
leaders, or a restart never pay a period twice. A period the platform missed entirely is not
paid late on its own: the next one pays the whole balance anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from app.domain.errors import CheckoutError

Frequency = Literal["daily", "weekly"]
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class InvalidSchedule(CheckoutError):
    """A payout schedule that cannot run: its field is named."""

    code = "payout_schedule_invalid"


@dataclass(frozen=True)
class PayoutSchedule:
    merchant_id: str
    frequency: Frequency
    address: str
    hour: int = 0  # UTC hour of the day it runs from
    weekday: int | None = None  # weekly: 0 = Monday … 6 = Sunday
    minimum_amount: int = 1  # micro-USDT: less waits for the next period
    keep_amount: int = 0  # micro-USDT left in the balance (e.g. for refunds)

    def __post_init__(self) -> None:
        if self.frequency not in ("daily", "weekly"):
            raise InvalidSchedule("frequency must be daily or weekly", param="frequency")
        if not 0 <= self.hour <= 23:
            raise InvalidSchedule("hour must be 0 to 23 (UTC)", param="hour")
        if (self.frequency == "weekly") != (self.weekday is not None):
            raise InvalidSchedule(
                "weekday is required for a weekly schedule and only for it", param="weekday"
            )
        if self.weekday is not None and not 0 <= self.weekday <= 6:
            raise InvalidSchedule("weekday must be monday to sunday", param="weekday")
        if self.minimum_amount < 1:
            raise InvalidSchedule("minimum_amount must be above zero", param="minimum_amount")
        if self.keep_amount < 0:
            raise InvalidSchedule("keep_amount must not be negative", param="keep_amount")

    def due_period(self, now: datetime) -> str | None:
        """The key of the period due at ``now`` (its start has passed), or None before it."""
        now = now.astimezone(UTC)
        day = now.date()
        if self.frequency == "daily":
            start = datetime(day.year, day.month, day.day, self.hour, tzinfo=UTC)
            return day.isoformat() if now >= start else None
        assert self.weekday is not None
        monday = day - timedelta(days=day.weekday())
        run_day = monday + timedelta(days=self.weekday)
        start = datetime(run_day.year, run_day.month, run_day.day, self.hour, tzinfo=UTC)
        if now < start:
            return None
        year, week, _ = run_day.isocalendar()
        return f"{year}-W{week:02d}"

    def amount_to_pay(self, available: int) -> int | None:
        """What this period pays out of ``available``, or None when below the minimum."""
        amount = available - self.keep_amount
        return amount if amount >= self.minimum_amount else None
