"""The merchant's reports, read from the read models of migrations/0012_read_models.sql.

Everything here reads; the projection writes (docs/reports.md). Amounts are micro-USDT.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

from app.adapters.postgres.pool import Connections
from app.domain.ledger import in_flight_account, merchant_account

SUMMARY_COLUMNS: Final = (
    "gross_volume",
    "fees",
    "net_volume",
    "balance",
    "settlements",
    "invoices_created",
    "invoices_pending",
    "invoices_confirming",
    "invoices_paid",
    "invoices_expired",
    "invoices_cancelled",
    "invoices_underpaid",
    "invoices_overpaid",
    "invoices_paid_late",
    "ms_to_paid_total",
    "paid_with_time",
    "updated_at",
)
DAILY_COLUMNS: Final = (
    "day",
    "gross_volume",
    "fees",
    "net_volume",
    "settlements",
    "invoices_created",
    "invoices_paid",
    "invoices_expired",
)


class PostgresReports:
    """``ReportReads`` (app/services/ports.py) over the worker's pool."""

    def __init__(self, pool: Connections) -> None:
        self._pool = pool

    async def summary(self, merchant_id: str) -> dict[str, Any] | None:
        """The merchant's row of ``merchant_dashboard``; None before their first event.

        ``balance`` is read from the ledger, as ``GET /api/v1/balance`` reads it: the read model
        folds settlements only, and refunds and payouts move the balance too."""
        selected = [
            "(SELECT coalesce(sum(amount), 0) FROM ledger_entries"
            " WHERE account = %s AND currency = 'USDT')"
            if column == "balance"
            else column
            for column in SUMMARY_COLUMNS
        ]
        rows = await self._fetch(
            f"SELECT {', '.join(selected)} FROM merchant_dashboard"  # noqa: S608 - constants
            " WHERE merchant_id = %s",
            (merchant_account(merchant_id), merchant_id),
            SUMMARY_COLUMNS,
        )
        return rows[0] if rows else None

    async def daily(self, merchant_id: str, first: date, last: date) -> list[dict[str, Any]]:
        """The merchant's days from ``first`` to ``last`` (both included) that had activity."""
        return await self._fetch(
            f"SELECT {', '.join(DAILY_COLUMNS)} FROM daily_settlement_metrics"  # noqa: S608 - constants
            " WHERE merchant_id = %s AND day BETWEEN %s AND %s ORDER BY day",
            (merchant_id, first, last),
            DAILY_COLUMNS,
        )

    async def platform_revenue(self, first: date, last: date) -> list[dict[str, Any]]:
        """``platform_revenue_daily`` from ``first`` to ``last`` (both included), days with
        settlements only."""
        return await self._fetch(
            "SELECT day, settlements, gross_volume, fees, net_volume FROM platform_revenue_daily"
            " WHERE day BETWEEN %s AND %s ORDER BY day",
            (first, last),
            ("day", "settlements", "gross_volume", "fees", "net_volume"),
        )

    async def merchant_days(self, day: date) -> list[dict[str, Any]]:
        """Every merchant's row of ``daily_settlement_metrics`` for ``day``."""
        columns = ("merchant_id", *DAILY_COLUMNS[1:])
        return await self._fetch(
            f"SELECT {', '.join(columns)} FROM daily_settlement_metrics"  # noqa: S608 - constants
            " WHERE day = %s ORDER BY merchant_id",
            (day,),
            columns,
        )

    async def platform_day(self, day: date) -> dict[str, Any]:
        """The day's payment statistics (with the p95 confirmation time) and revenue."""
        columns = (
            "payments_detected", "payments_confirmed", "payments_failed", "payments_orphaned",
            "confirmation_ms_total", "p95_confirmation_ms", "settlements", "gross_volume",
            "fees", "net_volume",
        )  # fmt: skip
        rows = await self._fetch(
            """
            SELECT s.payments_detected, s.payments_confirmed, s.payments_failed,
                s.payments_orphaned, s.confirmation_ms_total,
                (SELECT percentile_disc(0.95) WITHIN GROUP (ORDER BY confirmation_ms)
                 FROM payment_timings WHERE confirmed_day = %s),
                r.settlements, r.gross_volume, r.fees, r.net_volume
            FROM (SELECT %s::date AS day) d
            LEFT JOIN payment_confirmation_stats s ON s.day = d.day
            LEFT JOIN platform_revenue_daily r ON r.day = d.day
            """,
            (day, day),
            columns,
        )
        return rows[0]

    async def balance(self, merchant_id: str) -> dict[str, int]:
        """``available``: the merchant's ledger account (net settled, less refunds and payouts);
        ``incoming``: USDT received on their open invoices, waiting for confirmations (gross:
        the fee comes off when they settle); ``outgoing``: refunds and payouts debited and not
        yet final on chain (they return to ``available`` if they fail)."""
        rows = await self._fetch(
            "SELECT (SELECT coalesce(sum(amount), 0) FROM ledger_entries"
            "  WHERE account = %s AND currency = 'USDT'),"
            " (SELECT coalesce(sum(amount_received), 0) FROM invoice_summaries"
            "  WHERE merchant_id = %s AND status IN ('pending', 'confirming')),"
            " (SELECT coalesce(sum(amount), 0) FROM ledger_entries"
            "  WHERE account = %s AND currency = 'USDT')",
            (merchant_account(merchant_id), merchant_id, in_flight_account(merchant_id)),
            ("available", "incoming", "outgoing"),
        )
        return {name: int(value) for name, value in rows[0].items()}

    async def _fetch(
        self, sql: str, params: tuple[Any, ...], columns: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(sql, params)
            found = await cur.fetchall()
        return [dict(zip(columns, row, strict=True)) for row in found]
