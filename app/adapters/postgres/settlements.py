"""Settlements as the ledger recorded them (migrations/0005_settlements_ledger.sql), for reading.

The settlement agent writes them with their entries (app/adapters/postgres/ledger.py); the
merchant API reads them here, a merchant only ever their own.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, Final

from app.adapters.postgres.pool import Connections
from app.adapters.postgres.projections import conditions, page_of, window
from app.services.ports import Page, SettlementQuery

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

    async def list(self, merchant_id: str, query: SettlementQuery) -> Page:
        """The merchant's settlements matching every filter of ``query``, newest first.

        The same keyset pagination as the invoice list: (created_at, settlement_id) below the
        cursor's, on the (merchant_id, created_at) index.
        """
        clauses, params = conditions(
            ("merchant_id = %s", merchant_id),
            ("invoice_id = %s", query.invoice_id),
            ("status = ANY(%s)", [str(item) for item in query.status]),
            *window(query.created_from, query.created_to, query.cursor, "settlement_id"),
        )
        sql = (
            f"{_SELECT} WHERE {' AND '.join(clauses)}"
            " ORDER BY created_at DESC, settlement_id DESC LIMIT %s"
        )
        params.append(query.limit + 1)  # one more tells whether another page follows
        return page_of(await self._rows(sql, params), query.limit, "settlement_id")

    async def _rows(self, query: str, params: Sequence[Any]) -> builtins.list[dict[str, Any]]:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(query, params)
            found = await cur.fetchall()
        return [dict(zip(COLUMNS, row, strict=True)) for row in found]
