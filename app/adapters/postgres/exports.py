"""The merchant's CSV exports, read in pages so that no export is ever held in memory whole.

Each page is one keyset query (``(created_at, id) > last``, oldest first) of ``page`` rows; the
web view writes a page to the client before it reads the next one. Amounts are micro-USDT.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Final

from app.adapters.postgres.pool import Connections

SETTLEMENT_COLUMNS: Final = (
    "settlement_id",
    "invoice_id",
    "order_id",
    "gross_amount",
    "platform_fee_amount",
    "platform_fee_percentage",
    "net_amount",
    "status",
    "tx_hashes",
    "block_numbers",
    "paid_at",
    "settled_at",
    "created_at",
)
_SETTLEMENTS: Final = """
    SELECT s.settlement_id, s.invoice_id, i.order_id, s.gross_amount, s.platform_fee_amount,
        s.platform_fee_percentage, s.net_amount, s.status, coalesce(i.tx_hashes, '{}'),
        coalesce(i.block_numbers, '{}'), i.paid_at, s.completed_at, s.created_at
    FROM settlements s LEFT JOIN invoice_summaries i ON i.invoice_id = s.invoice_id
    WHERE s.merchant_id = %s AND s.created_at >= %s AND s.created_at < %s
        AND (s.created_at, s.settlement_id) > (%s, %s)
    ORDER BY s.created_at, s.settlement_id
    LIMIT %s
"""

INVOICE_COLUMNS: Final = (
    "invoice_id",
    "order_id",
    "description",
    "status",
    "payment_exception",
    "amount",
    "amount_received",
    "amount_confirmed",
    "amount_due",
    "fee_percentage",
    "deposit_address",
    "tx_hashes",
    "block_numbers",
    "created_at",
    "expires_at",
    "paid_at",
    "expired_at",
    "cancelled_at",
)
_INVOICES: Final = f"""
    SELECT {", ".join(INVOICE_COLUMNS)} FROM invoice_summaries
    WHERE merchant_id = %s AND created_at >= %s AND created_at < %s
        AND (created_at, invoice_id) > (%s, %s)
    ORDER BY created_at, invoice_id
    LIMIT %s
"""  # noqa: S608 - constants


class PostgresExports:
    """``ExportReads`` (app/services/ports.py) over the worker's pool."""

    def __init__(self, pool: Connections, *, page: int = 1_000) -> None:
        self._pool = pool
        self._page = page

    def settlements(
        self, merchant_id: str, start: datetime, end: datetime
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Settlements created in [start, end), oldest first, a page at a time."""
        return self._pages(_SETTLEMENTS, SETTLEMENT_COLUMNS, merchant_id, start, end)

    def invoices(
        self, merchant_id: str, start: datetime, end: datetime
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Invoices created in [start, end), oldest first, a page at a time."""
        return self._pages(_INVOICES, INVOICE_COLUMNS, merchant_id, start, end)

    async def _pages(
        self,
        sql: str,
        columns: tuple[str, ...],
        merchant_id: str,
        start: datetime,
        end: datetime,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        after: tuple[datetime, str] = (start, "")
        while True:
            async with self._pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute(sql, (merchant_id, start, end, *after, self._page))
                found = await cur.fetchall()
            if not found:
                return
            rows = [dict(zip(columns, row, strict=True)) for row in found]
            yield rows
            if len(found) < self._page:
                return
            last = rows[-1]
            after = (last["created_at"], last[columns[0]])
