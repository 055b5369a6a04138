"""The payout-schedule timer on the leader: merchants' daily and weekly payouts, when due.

app/services/payout_schedule.py requests each due period's payout once (the period is its
idempotency key); the money-out driver sends it like any payout. A failed run is logged and
counted; the next run, a minute later, tries the same periods again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Final

import faust
from prometheus_client import Counter

from app.services.payout_schedule import PayoutSchedules

logger = logging.getLogger(__name__)

NAME: Final = "pay_scheduled_payouts"
FAILURES = Counter(
    "checkout_payout_schedule_failures",
    "Runs of the payout-schedule timer that failed (the next run tries the same periods)",
    ["error"],
)


def register(app: faust.App, schedules: PayoutSchedules, interval: float) -> None:
    async def pay_scheduled_payouts() -> None:
        try:
            await schedules.pay_due(datetime.now(UTC))
        except Exception as exc:  # nothing is lost: the period's payout is asked for again
            FAILURES.labels(type(exc).__name__).inc()
            logger.exception("scheduled payouts: run failed; the next run asks again")

    app.timer(interval=interval, on_leader=True, name=f"{__name__}.{NAME}")(pay_scheduled_payouts)
