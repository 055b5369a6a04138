"""Settlements as the ledger recorded them (migrations/0005_settlements_ledger.sql), for reading.

The settlement agent writes them with their entries (app/adapters/postgres/ledger.py); the
merchant API reads them here, a merchant only ever their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from app.adapters.postgres.pool import Connections

COLUMNS: Final = (
    "settlement_id",
    "invoice_id",
    "merchant_id",
    "gross_amount",
    "platform_fee_amount",
    "platform_fee_percentage",
    "net_amount",
    "status",
    "created_at",
    "completed_at",
)
_SELECT: Final = f"SELECT {', '.join(COLUMNS)} FROM settlements"  # noqa: S608 - constants


class SettlementRecords:
    def __init__(self, pool: Connections) -> None:
        self._pool = pool

    async def get(self, merchant_id: str, settlement_id: str) -> dict[str, Any] | None:
        rows = await self._rows(
            f"{_SELECT} WHERE settlement_id = %s AND merchant_id = %s",
            (settlement_id, merchant_id),
        )
        return rows[0] if rows else None

    async def recent(
        self, merchant_id: str, *, invoice_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """The merchant's settlements, newest first (of one invoice, when given)."""
        query = f"{_SELECT} WHERE merchant_id = %s"
        params: list[Any] = [merchant_id]
        if invoice_id is not None:
            query += " AND invoice_id = %s"
            params.append(invoice_id)
        query += " ORDER BY created_at DESC, settlement_id DESC LIMIT %s"
        params.append(limit)
        return await self._rows(query, params)

    async def _rows(self, query: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(query, params)
            found = await cur.fetchall()
        return [dict(zip(COLUMNS, row, strict=True)) for row in found]
