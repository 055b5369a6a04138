"""The platform ledger in PostgreSQL: a settlement's money, booked once, in double entry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiopg

from app.domain.settlement import Settlement

CUSTOMER_FUNDS = "customer_funds"
PLATFORM_FEES = "platform_fees"


def merchant_account(merchant_id: str) -> str:
    return f"merchant:{merchant_id}"


@dataclass(frozen=True)
class Booking:
    """What the ledger holds for a settlement: when it was credited, and its reference."""

    credited_at: datetime
    reference: str


class Ledger:
    def __init__(self, pool: aiopg.Pool) -> None:
        self._pool = pool

    async def book_settlement(self, settlement: Settlement) -> Booking:
        """Credit the merchant's net and the platform's fee for ``settlement``, exactly once.

        Returns the first booking's time and reference however often it is called, so a
        redelivered settlement completes with the same data it completed with the first time.
        """
        entries = [
            (CUSTOMER_FUNDS, -settlement.gross_amount),
            (merchant_account(settlement.merchant_id), settlement.net_amount),
            (PLATFORM_FEES, settlement.platform_fee_amount),
        ]
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("BEGIN")
            try:
                await cur.execute(
                    "INSERT INTO settlements (settlement_id, invoice_id, merchant_id, gross_amount,"
                    " platform_fee_amount, platform_fee_percentage, net_amount, status, created_at,"
                    " completed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, 'completed', %s, now())"
                    " ON CONFLICT (settlement_id) DO NOTHING",
                    (
                        settlement.settlement_id,
                        settlement.invoice_id,
                        settlement.merchant_id,
                        settlement.gross_amount,
                        settlement.platform_fee_amount,
                        settlement.platform_fee_percentage,
                        settlement.net_amount,
                        settlement.created_at,
                    ),
                )
                for account, amount in entries:
                    await cur.execute(
                        "INSERT INTO ledger_entries (settlement_id, account, amount)"
                        " VALUES (%s, %s, %s) ON CONFLICT (settlement_id, account) DO NOTHING",
                        (settlement.settlement_id, account, amount),
                    )
                await cur.execute(
                    "SELECT completed_at, (SELECT min(entry_id) FROM ledger_entries"
                    " WHERE settlement_id = %s) FROM settlements WHERE settlement_id = %s",
                    (settlement.settlement_id, settlement.settlement_id),
                )
                row = await cur.fetchone()
            except BaseException:
                await cur.execute("ROLLBACK")
                raise
            await cur.execute("COMMIT")
        return Booking(credited_at=row[0], reference=f"ledger:{row[1]}")
