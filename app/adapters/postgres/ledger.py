"""The platform ledger in PostgreSQL: a settlement's money, booked once, in double entry."""

from __future__ import annotations

from collections.abc import Mapping

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
        return await self._once(
            _BOOK_SETTLEMENT,
            _BOOKED_SETTLEMENT,
            params,
            f"settlement {settlement.settlement_id} is not in the ledger after booking it",
        )

    async def reverse_settlement(self, settlement: Settlement) -> Booking:
        """Book ``settlement`` back exactly once: one ledger transaction of kind
        ``settlement_reversal`` (customer funds +gross, merchant −net, platform fees −fee) and
        the settlement row marked reversed, in one statement; the original entries stay.

        Returns the reversal's time and reference however often it is called.
        """
        params = {
            "settlement_id": settlement.settlement_id,
            "customer_funds": CUSTOMER_FUNDS,
            "merchant": merchant_account(settlement.merchant_id),
            "platform_fees": PLATFORM_FEES,
        }
        return await self._once(
            _REVERSE_SETTLEMENT,
            _REVERSED_SETTLEMENT,
            params,
            f"settlement {settlement.settlement_id} is not booked, or not reversed after "
            "reversing it",
        )

    async def _once(
        self, book: str, booked: str, params: Mapping[str, object], missing: str
    ) -> Booking:
        """Run ``book``; if it wrote nothing, read what ``booked`` finds: the time and the first
        entry of a movement booked once, however often asked."""
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(book, params)
            row = await cur.fetchone()
            if row is None or row[0] is None or row[1] is None:
                # Booked before (a redelivery), or by a concurrent booking this statement waited
                # for: its snapshot predates that commit, so read what is there now.
                await cur.execute(booked, params)
                row = await cur.fetchone()
        if row is None or row[0] is None or row[1] is None:
            raise RuntimeError(missing)
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

# The reversal of a completed settlement: the row is marked reversed (only from completed, so at
# most once) and one balanced ledger transaction books its amounts back, from the row itself.
# Its entries carry no settlement_id (the original's own entries hold it, one per account).
_REVERSE_SETTLEMENT = """
WITH target AS (
    UPDATE settlements SET status = 'reversed', reversed_at = now()
    WHERE settlement_id = %(settlement_id)s AND status = 'completed'
    RETURNING settlement_id, gross_amount, platform_fee_amount, net_amount, reversed_at
), movement AS (
    INSERT INTO ledger_transactions (kind, reference, created_at)
    SELECT 'settlement_reversal', settlement_id, reversed_at FROM target
    RETURNING tx_id
), entries AS (
    INSERT INTO ledger_entries (tx_id, account, amount)
    SELECT movement.tx_id, entry.account, entry.amount
    FROM movement, target, LATERAL (VALUES (%(customer_funds)s, target.gross_amount),
        (%(merchant)s, -target.net_amount), (%(platform_fees)s, -target.platform_fee_amount))
        AS entry (account, amount)
    RETURNING entry_id
)
SELECT (SELECT reversed_at FROM target), (SELECT min(entry_id) FROM entries)
"""

_REVERSED_SETTLEMENT = """
SELECT s.reversed_at, (
    SELECT min(e.entry_id) FROM ledger_entries e JOIN ledger_transactions t USING (tx_id)
    WHERE t.kind = 'settlement_reversal' AND t.reference = %(settlement_id)s)
FROM settlements s WHERE s.settlement_id = %(settlement_id)s AND s.status = 'reversed'
"""
