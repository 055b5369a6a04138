"""The platform ledger in PostgreSQL: a settlement's money, booked once, in double entry."""

from __future__ import annotations

from app.adapters.postgres.pool import Connections
from app.domain.settlement import Settlement
from app.services.ports import Booking

CUSTOMER_FUNDS = "customer_funds"
PLATFORM_FEES = "platform_fees"


def merchant_account(merchant_id: str) -> str:
    return f"merchant:{merchant_id}"


class PostgresLedger:
    def __init__(self, pool: Connections) -> None:
        self._pool = pool

    async def book_settlement(self, settlement: Settlement) -> Booking:
        """Credit the merchant's net and the platform's fee for ``settlement``, exactly once.

        Returns the first booking's time and reference however often it is called, so a
        redelivered settlement completes with the same data it completed with the first time.

        One statement, so one round trip and atomic on its own (the settlement agent books one
        settlement at a time, and waits for it): the settlement row and its three entries are
        inserted unless they exist, and what they hold is returned.
        """
        params = {
            "settlement_id": settlement.settlement_id,
            "invoice_id": settlement.invoice_id,
            "merchant_id": settlement.merchant_id,
            "gross": settlement.gross_amount,
            "customer_debit": -settlement.gross_amount,
            "fee": settlement.platform_fee_amount,
            "fee_percentage": settlement.platform_fee_percentage,
            "net": settlement.net_amount,
            "created_at": settlement.created_at,
            "customer_funds": CUSTOMER_FUNDS,
            "merchant": merchant_account(settlement.merchant_id),
            "platform_fees": PLATFORM_FEES,
        }
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(_BOOK_SETTLEMENT, params)
            row = await cur.fetchone()
            if row is None or row[0] is None or row[1] is None:
                # Booked before (a redelivery), or by a concurrent booking this statement waited
                # for: its snapshot predates that commit, so read what is there now.
                await cur.execute(_BOOKED_SETTLEMENT, params)
                row = await cur.fetchone()
        if row is None or row[0] is None or row[1] is None:
            raise RuntimeError(
                f"settlement {settlement.settlement_id} is not in the ledger after booking it"
            )
        return Booking(credited_at=row[0], reference=f"ledger:{row[1]}")


# One ledger transaction of kind ``settlement`` whose entries sum to zero: the customer funds held
# for the invoice (-gross) become the merchant's net and the platform's fee. The transaction and
# its entries are inserted only with their settlement row, in one statement; the entries'
# foreign key is checked at its end, and their balance at commit (migrations/0016_money_out.sql).
_BOOK_SETTLEMENT = """
WITH booked AS (
    INSERT INTO settlements (settlement_id, invoice_id, merchant_id, gross_amount,
        platform_fee_amount, platform_fee_percentage, net_amount, status, created_at, completed_at)
    VALUES (%(settlement_id)s, %(invoice_id)s, %(merchant_id)s, %(gross)s, %(fee)s,
        %(fee_percentage)s, %(net)s, 'completed', %(created_at)s, now())
    ON CONFLICT (settlement_id) DO NOTHING
    RETURNING completed_at
), movement AS (
    INSERT INTO ledger_transactions (kind, reference, created_at)
    SELECT 'settlement', %(settlement_id)s, completed_at FROM booked
    RETURNING tx_id
), entries AS (
    INSERT INTO ledger_entries (tx_id, settlement_id, account, amount)
    SELECT movement.tx_id, %(settlement_id)s, entry.account, entry.amount
    FROM movement, (VALUES (%(customer_funds)s, %(customer_debit)s::bigint),
        (%(merchant)s, %(net)s::bigint), (%(platform_fees)s, %(fee)s::bigint))
        AS entry (account, amount)
    RETURNING entry_id
)
SELECT (SELECT completed_at FROM booked), (SELECT min(entry_id) FROM entries)
"""

_BOOKED_SETTLEMENT = """
SELECT completed_at,
    (SELECT min(entry_id) FROM ledger_entries WHERE settlement_id = %(settlement_id)s)
FROM settlements WHERE settlement_id = %(settlement_id)s
"""
