"""Scheduled payouts (app/domain/payout_schedule.py): which period is due when, and how much."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.domain.payout_schedule import InvalidSchedule, PayoutSchedule

pytestmark = pytest.mark.unit

ADDRESS = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_daily_schedule_is_due_from_its_hour_each_day() -> None:
    daily = PayoutSchedule("mer_a", "daily", ADDRESS, hour=9)
    assert daily.due_period(at("2026-12-02T08:59:59")) is None
    assert daily.due_period(at("2026-12-02T09:00:00")) == "2026-12-02"
    assert daily.due_period(at("2026-12-02T23:59:00")) == "2026-12-02"
    assert daily.due_period(at("2026-12-03T10:00:00")) == "2026-12-03"


def test_a_weekly_schedule_is_due_from_its_weekday_and_hour_for_the_iso_week() -> None:
    friday = PayoutSchedule("mer_a", "weekly", ADDRESS, hour=17, weekday=4)
    assert friday.due_period(at("2026-12-02T18:00:00")) is None  # a Wednesday
    assert friday.due_period(at("2026-12-04T16:59:00")) is None
    assert friday.due_period(at("2026-12-04T17:00:00")) == "2026-W49"
    assert friday.due_period(at("2026-12-06T23:00:00")) == "2026-W49"  # Sunday: same week
    assert friday.due_period(at("2026-12-07T00:00:00")) is None  # a new week, not yet Friday
    # The ISO year of the week, not the calendar year: Thursday 31 Dec 2026 is 2026-W53.
    thursday = PayoutSchedule("mer_a", "weekly", ADDRESS, weekday=3)
    assert thursday.due_period(at("2026-12-31T01:00:00")) == "2026-W53"


def test_what_a_period_pays_keeps_the_reserve_and_respects_the_minimum() -> None:
    schedule = PayoutSchedule(
        "mer_a", "daily", ADDRESS, minimum_amount=50_000_000, keep_amount=100_000_000
    )
    assert schedule.amount_to_pay(160_000_000) == 60_000_000
    assert schedule.amount_to_pay(149_999_999) is None
    assert schedule.amount_to_pay(0) is None


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"frequency": "monthly"}, "frequency"),
        ({"frequency": "weekly"}, "weekday"),
        ({"frequency": "daily", "weekday": 2}, "weekday"),
        ({"frequency": "weekly", "weekday": 7}, "weekday"),
        ({"frequency": "daily", "hour": 24}, "hour"),
        ({"frequency": "daily", "minimum_amount": 0}, "minimum_amount"),
        ({"frequency": "daily", "keep_amount": -1}, "keep_amount"),
    ],
)
def test_a_schedule_that_cannot_run_names_its_field(fields: dict, param: str) -> None:
    with pytest.raises(InvalidSchedule) as caught:
        PayoutSchedule("mer_a", address=ADDRESS, **fields)
    assert caught.value.param == param
