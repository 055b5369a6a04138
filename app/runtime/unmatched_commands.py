"""``checkout chain unmatched [resolve]``: received money that paid no invoice (docs/operations.md,
"Unmatched transfers").

- ``chain unmatched [--since T] [--reason R] [--open] [--limit N] [--json]``: the transfers to our
  deposit addresses that the payment agent did not apply (``unmatched_transfers``, projected from
  ``UnmatchedTransferReceived``), newest first by block time, with the total of every one that
  matches the filters (shown or not) and how much of it is still open.
- ``chain unmatched resolve TRANSFER_ID --note TEXT [--by NAME]``: marks one handled (a refund
  sent, a credit booked, nothing owed) with a note of at most 500 characters on one line. Once:
  a transfer resolved before is refused with its first resolution. Audited.

They read and write PostgreSQL only: no worker is needed.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Final

import click

from app.adapters.postgres.audit_log import PostgresAuditLog
from app.adapters.postgres.unmatched import (
    MAX_LIST,
    MAX_NOTE,
    REASONS,
    PostgresUnmatchedTransfers,
    UnmatchedInputError,
    UnmatchedList,
    UnmatchedQuery,
    check_text,
    parse_transfer_id,
)
from app.domain.money import MICRO_PER_USDT, format_usdt
from app.runtime.cli_support import (
    TIME_FORMATS,
    as_utc,
    audited,
    database,
    json_option,
    print_json,
    refuse,
    table,
)
from app.settings import Settings

DEFAULT_LIMIT: Final = 200
LIST: Final = "chain unmatched"
RESOLVE: Final = "chain unmatched resolve"


def unmatched_group(settings: Settings) -> click.Group:
    @click.group(name="unmatched", invoke_without_command=True)
    @click.option(
        "--since",
        type=click.DateTime(TIME_FORMATS),
        default=None,
        help="Transfers in blocks from this time (UTC unless an offset is given).",
    )
    @click.option("--reason", type=click.Choice(REASONS), default=None)
    @click.option("--open", "open_only", is_flag=True, help="Only those not resolved yet.")
    @click.option(
        "--limit",
        type=click.IntRange(1, MAX_LIST),
        default=None,
        help=f"Rows shown, newest first (default {DEFAULT_LIMIT}); the total counts them all.",
    )
    @json_option
    @click.pass_context
    def unmatched(
        ctx: click.Context,
        since: datetime | None,
        reason: str | None,
        open_only: bool,
        limit: int | None,
        as_json: bool,
    ) -> None:
        """Money received at our deposit addresses that paid no invoice; `resolve` one."""
        ctx.obj = {"json": as_json}
        if ctx.invoked_subcommand is None:
            query = UnmatchedQuery(as_utc(since), reason, open_only, limit or DEFAULT_LIMIT)
            asyncio.run(_list(settings, query, as_json))
        elif since is not None or reason is not None or open_only or limit is not None:
            refuse(LIST, "--since, --reason, --open and --limit filter the list, not resolve")

    @unmatched.command(name="resolve")
    @click.argument("transfer_id")
    @click.option(
        "--note",
        required=True,
        help=f"What was done: the refund, the credit, why nothing is owed (≤ {MAX_NOTE} chars).",
    )
    @click.option("--by", "by", default="operator", show_default=True, help="Who handled it.")
    @json_option
    @click.pass_context
    def resolve(ctx: click.Context, transfer_id: str, note: str, by: str, as_json: bool) -> None:
        """Mark one unmatched transfer handled (once)."""
        try:
            transfer_id = parse_transfer_id(transfer_id)
            check_text(note, field="--note", limit=MAX_NOTE)
            check_text(by, field="--by", limit=100)
        except UnmatchedInputError as exc:
            refuse(RESOLVE, exc)
        wants_json = as_json or bool((ctx.obj or {}).get("json"))
        asyncio.run(_resolve(settings, transfer_id, note, by, wants_json))

    return unmatched


async def _list(settings: Settings, query: UnmatchedQuery, as_json: bool) -> None:
    async with database(settings, maxsize=1) as pool:
        try:
            found = await PostgresUnmatchedTransfers(pool).list(query)
        except UnmatchedInputError as exc:
            refuse(LIST, exc)
    if as_json:
        print_json(_list_json(found, query))
        return
    _print_list(found, query)


async def _resolve(settings: Settings, transfer_id: str, note: str, by: str, as_json: bool) -> None:
    async with database(settings, maxsize=1) as pool:
        transfers = PostgresUnmatchedTransfers(pool)
        row: dict[str, Any] = await audited(
            PostgresAuditLog(pool),
            RESOLVE,
            None,
            lambda resolved: resolved["transfer_id"],
            lambda: transfers.resolve(transfer_id, note=note, by=by),
            lambda resolved: {
                "amount": format_usdt(resolved["amount"]),
                "reason": resolved["reason"],
                "to_address": resolved["to_address"],
                "invoice_id": resolved["invoice_id"],
            },
        )
    if as_json:
        print_json(_row_json(row))
        return
    print(
        f"resolved {row['transfer_id']}: {usdt6(row['amount'])} USDT to {row['to_address']} "
        f"({row['reason']}), by {row['resolved_by']}: {row['resolution_note']}"
    )


def usdt6(micro: int) -> str:
    """Micro-USDT as USDT with all six decimals (``9990000`` → ``9.990000``)."""
    whole, fraction = divmod(micro, MICRO_PER_USDT)
    return f"{whole}.{fraction:06d}"


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _row_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "amount": format_usdt(row["amount"]),
        "event_id": str(row["event_id"]),
        "block_timestamp": _iso(row["block_timestamp"]),
        "recorded_at": _iso(row["recorded_at"]),
        "resolved_at": _iso(row["resolved_at"]),
    }


def _list_json(found: UnmatchedList, query: UnmatchedQuery) -> dict[str, Any]:
    return {
        "data": [_row_json(row) for row in found.rows],
        "shown": len(found.rows),
        "limit": query.limit,
        "total": {
            "transfers": found.count,
            "amount": format_usdt(found.amount),
            "open_transfers": found.open_count,
            "open_amount": format_usdt(found.open_amount),
        },
    }


def _print_list(found: UnmatchedList, query: UnmatchedQuery) -> None:
    if found.rows:
        table(
            ("time (UTC)", "block", "transfer", "to address", "USDT", "reason", "invoice", "state"),
            [
                (
                    row["block_timestamp"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                    row["block_number"],
                    row["transfer_id"],
                    row["to_address"],
                    usdt6(row["amount"]),
                    row["reason"],
                    row["invoice_id"] or "-",
                    "open" if row["resolved_at"] is None else "resolved",
                )
                for row in found.rows
            ],
            numeric=(1, 4),
        )
    more = f"; newest {len(found.rows)} shown (--limit)" if found.count > len(found.rows) else ""
    print(
        f"total: {found.count} transfers, {usdt6(found.amount)} USDT; open: {found.open_count}, "
        f"{usdt6(found.open_amount)} USDT{more}"
    )
