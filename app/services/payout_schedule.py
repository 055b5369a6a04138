"""Scheduled payouts: set a merchant's standing order, and pay what is due each period.

The timer (agents/payout_schedule.py, on the leader) calls ``pay_due`` every minute: for each
schedule whose period has begun, the available balance less ``keep_amount`` is paid out if it
reaches ``minimum_amount``, as an ordinary payout (same limits, same approval threshold, same
events) whose idempotency key is the period — so a period pays once, however often this runs.
"""

from __future__ import annotations

import logging
from datetime import datetime

from prometheus_client import Counter

from app.domain.errors import CheckoutError, NotFound
from app.domain.money_out import TransferKind
from app.domain.payout_schedule import PayoutSchedule
from app.services.money_out import MoneyOutRequests
from app.services.ports import MoneyOutStore, PayoutScheduleStore, ReportReads

log = logging.getLogger(__name__)

SCHEDULED_PAYOUTS = Counter(
    "checkout_scheduled_payouts", "Payouts requested by merchants' schedules", ["outcome"]
)


class PayoutScheduleNotFound(NotFound):
    """The merchant has no payout schedule."""

    code = "payout_schedule_not_found"


class PayoutSchedules:
    def __init__(
        self,
        schedules: PayoutScheduleStore,
        money_out: MoneyOutRequests,
        store: MoneyOutStore,
        balances: ReportReads,
    ) -> None:
        self._schedules = schedules
        self._money_out = money_out
        self._store = store
        self._balances = balances

    async def get(self, merchant_id: str) -> PayoutSchedule:
        schedule = await self._schedules.get(merchant_id)
        if schedule is None:
            raise PayoutScheduleNotFound("no payout schedule is set", param="merchant_id")
        return schedule

    async def put(self, schedule: PayoutSchedule) -> PayoutSchedule:
        await self._money_out.check_destination(schedule.address)
        return await self._schedules.put(schedule)

    async def delete(self, merchant_id: str) -> None:
        if not await self._schedules.delete(merchant_id):
            raise PayoutScheduleNotFound("no payout schedule is set", param="merchant_id")

    async def pay_due(self, now: datetime) -> int:
        """Request the payouts due at ``now``; how many were requested (new or already made)."""
        requested = 0
        for schedule in await self._schedules.all():
            period = schedule.due_period(now)
            if period is None:
                continue
            try:
                if await self._pay(schedule, period, now):
                    requested += 1
            except CheckoutError as exc:  # the balance moved meanwhile, a refused address…
                SCHEDULED_PAYOUTS.labels("refused").inc()
                log.warning(
                    "scheduled payout of %s for %s refused: %s",
                    schedule.merchant_id,
                    period,
                    exc.message,
                )
        return requested

    async def _pay(self, schedule: PayoutSchedule, period: str, now: datetime) -> bool:
        key = f"schedule:{period}"
        if await self._store.by_key(schedule.merchant_id, TransferKind.PAYOUT, key) is not None:
            return True  # this period's payout exists already
        available = (await self._balances.balance(schedule.merchant_id))["available"]
        amount = schedule.amount_to_pay(available)
        if amount is None:
            return False  # below the minimum: the next period pays it with the rest
        _, replayed = await self._money_out.request_payout(
            schedule.merchant_id,
            amount=amount,
            address=schedule.address,
            threshold=await self._store.payout_threshold(schedule.merchant_id),
            idempotency_key=key,
            fingerprint=key,
            now=now,
        )
        SCHEDULED_PAYOUTS.labels("replayed" if replayed else "requested").inc()
        return True
