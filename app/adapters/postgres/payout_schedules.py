"""Merchants' payout schedules in PostgreSQL (migrations/0019_payout_schedules.sql)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from app.adapters.postgres.pool import SqlStore
from app.domain.payout_schedule import PayoutSchedule

_COLUMNS: Final = "merchant_id, frequency, address, hour, weekday, minimum_amount, keep_amount"


class PostgresPayoutSchedules(SqlStore):
    async def get(self, merchant_id: str) -> PayoutSchedule | None:
        row = await self._fetchone(
            f"SELECT {_COLUMNS} FROM payout_schedules WHERE merchant_id = %s",  # noqa: S608
            (merchant_id,),
        )
        return None if row is None else _schedule(row)

    async def put(self, schedule: PayoutSchedule) -> PayoutSchedule:
        await self._execute(
            "INSERT INTO payout_schedules (merchant_id, frequency, address, hour, weekday,"
            " minimum_amount, keep_amount) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (merchant_id) DO UPDATE SET frequency = EXCLUDED.frequency,"
            " address = EXCLUDED.address, hour = EXCLUDED.hour, weekday = EXCLUDED.weekday,"
            " minimum_amount = EXCLUDED.minimum_amount, keep_amount = EXCLUDED.keep_amount,"
            " updated_at = now()",
            (
                schedule.merchant_id,
                schedule.frequency,
                schedule.address,
                schedule.hour,
                schedule.weekday,
                schedule.minimum_amount,
                schedule.keep_amount,
            ),
        )
        return schedule

    async def delete(self, merchant_id: str) -> bool:
        row = await self._fetchone(
            "DELETE FROM payout_schedules WHERE merchant_id = %s RETURNING merchant_id",
            (merchant_id,),
        )
        return row is not None

    async def all(self) -> list[PayoutSchedule]:
        rows = await self._fetchall(
            f"SELECT {_COLUMNS} FROM payout_schedules ORDER BY merchant_id",  # noqa: S608
            (),
        )
        return [_schedule(row) for row in rows]


def _schedule(row: Sequence[Any]) -> PayoutSchedule:
    merchant_id, frequency, address, hour, weekday, minimum, keep = row
    return PayoutSchedule(
        merchant_id=merchant_id,
        frequency=frequency,
        address=address,
        hour=int(hour),
        weekday=None if weekday is None else int(weekday),
        minimum_amount=int(minimum),
        keep_amount=int(keep),
    )
