"""Unmatched transfers in PostgreSQL (migrations/0029_unmatched_transfers.sql): received money
that paid no invoice, and the operators' handling of it.

``unmatched_statements`` is the projection's part: an ``UnmatchedTransferReceived`` becomes a
row, once per transfer (``ON CONFLICT DO NOTHING``), in the transaction that records the event
(app/adapters/postgres/projections.py). ``PostgresUnmatchedTransfers`` lists the rows and marks
one resolved, for ``checkout chain unmatched`` (app/runtime/unmatched_commands.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import aiopg

from app.adapters.postgres.pool import Connections
from app.domain.events import DomainEvent, UnmatchedTransferReceived
from app.domain.fields import one_line

# <64 lowercase hex>:<log index>, the index without leading zeros and within PostgreSQL's integer.
TRANSFER_ID: Final = re.compile(r"^([0-9a-f]{64}):(0|[1-9][0-9]{0,9})$")
MAX_LOG_INDEX: Final = 2**31 - 1
MAX_NOTE: Final = 500
MAX_RESOLVER: Final = 100
MAX_LIST: Final = 1_000
REASONS: Final = ("not_a_deposit_address", "after_monitoring_window")


class UnmatchedInputError(ValueError):
    """An operator's input that cannot name or resolve an unmatched transfer."""


def parse_transfer_id(text: str) -> str:
    """``text`` as a transfer id (``<tx_hash>:<log_index>``, hex in any case); else an error."""
    if len(text) > 64 + 1 + 10:
        raise UnmatchedInputError("a transfer id is <64 hex digits of the tx hash>:<log index>")
    match = TRANSFER_ID.fullmatch(text.strip().lower())
    if match is None or int(match.group(2)) > MAX_LOG_INDEX:
        raise UnmatchedInputError(
            f"{text!r} is not a transfer id: <64 hex digits of the tx hash>:<log index>, "
            "as `checkout chain unmatched` lists it"
        )
    return f"{match.group(1)}:{match.group(2)}"


def check_text(value: str, *, field: str, limit: int) -> str:
    """``value`` if it is one line of 1..``limit`` characters without control characters."""
    if not value.strip():
        raise UnmatchedInputError(f"{field} must not be empty")
    if len(value) > limit:
        raise UnmatchedInputError(f"{field} has {len(value)} characters; at most {limit}")
    try:
        return one_line(value)
    except ValueError:
        raise UnmatchedInputError(
            f"{field} must be one line without NUL or other control characters"
        ) from None


# --- the projection ---------------------------------------------------------------------------

_RECORD: Final = (
    "INSERT INTO unmatched_transfers (transfer_id, tx_hash, log_index, block_number, block_id,"
    " block_timestamp, from_address, to_address, amount, reason, invoice_id, merchant_id,"
    " event_id)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT DO NOTHING"
)


def unmatched_statements(cursor: aiopg.Cursor, event: DomainEvent) -> list[bytes]:
    """The row of an ``UnmatchedTransferReceived``; nothing for any other event."""
    if not isinstance(event, UnmatchedTransferReceived):
        return []
    data = event.data
    return [
        cursor.mogrify(
            _RECORD,
            (
                event.aggregate_id,
                data.tx_hash,
                data.log_index,
                data.block_number,
                data.block_id,
                data.block_timestamp,
                data.from_address,
                data.to_address,
                data.amount,
                data.reason,
                data.invoice_id,
                data.merchant_id,
                str(event.event_id),
            ),
        )
    ]


# --- the operators' list --------------------------------------------------------------------

COLUMNS: Final = (
    "transfer_id",
    "tx_hash",
    "log_index",
    "block_number",
    "block_id",
    "block_timestamp",
    "from_address",
    "to_address",
    "amount",
    "reason",
    "invoice_id",
    "merchant_id",
    "event_id",
    "recorded_at",
    "resolved_at",
    "resolved_by",
    "resolution_note",
)

_SELECT: Final = f"SELECT {', '.join(COLUMNS)} FROM unmatched_transfers"  # noqa: S608 - constants
_TOTALS: Final = (
    "SELECT count(*), coalesce(sum(amount), 0), count(*) FILTER (WHERE resolved_at IS NULL),"
    " coalesce(sum(amount) FILTER (WHERE resolved_at IS NULL), 0) FROM unmatched_transfers"
)
_RESOLVE: Final = (
    "UPDATE unmatched_transfers SET resolved_at = now(), resolved_by = %s, resolution_note = %s"  # noqa: S608 - constants
    f" WHERE transfer_id = %s AND resolved_at IS NULL RETURNING {', '.join(COLUMNS)}"
)


@dataclass(frozen=True)
class UnmatchedQuery:
    since: datetime | None = None  # block time at or after
    reason: str | None = None
    open_only: bool = False
    limit: int = 200


@dataclass(frozen=True)
class UnmatchedList:
    rows: list[dict[str, Any]]  # newest first, at most the query's limit
    count: int  # every row matching, shown or not
    amount: int  # their micro-USDT
    open_count: int
    open_amount: int


class AlreadyResolved(UnmatchedInputError):
    """The transfer was marked handled before."""


class UnknownTransfer(UnmatchedInputError):
    """No unmatched transfer has this id."""


class PostgresUnmatchedTransfers:
    def __init__(self, pool: Connections) -> None:
        self._pool = pool

    async def list(self, query: UnmatchedQuery) -> UnmatchedList:
        if query.reason is not None and query.reason not in REASONS:
            raise UnmatchedInputError(f"reason must be one of {', '.join(REASONS)}")
        if not 1 <= query.limit <= MAX_LIST:
            raise UnmatchedInputError(f"limit must be between 1 and {MAX_LIST}")
        clauses: list[str] = ["TRUE"]
        params: list[Any] = []
        if query.since is not None:
            clauses.append("block_timestamp >= %s")
            params.append(query.since)
        if query.reason is not None:
            clauses.append("reason = %s")
            params.append(query.reason)
        if query.open_only:
            clauses.append("resolved_at IS NULL")
        where = " AND ".join(clauses)  # constant conditions; the values are bound parameters
        listed = f"{_SELECT} WHERE {where} ORDER BY block_timestamp DESC, transfer_id LIMIT %s"
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(listed, (*params, query.limit))
            rows = [dict(zip(COLUMNS, row, strict=True)) for row in await cur.fetchall()]
            await cur.execute(f"{_TOTALS} WHERE {where}", params)
            count, amount, open_count, open_amount = await cur.fetchone()
        return UnmatchedList(rows, int(count), int(amount), int(open_count), int(open_amount))

    async def resolve(self, transfer_id: str, *, note: str, by: str) -> dict[str, Any]:
        """Mark the transfer handled with the operator's ``note``; its row afterwards.

        ``UnknownTransfer`` for an id never recorded, ``AlreadyResolved`` for one handled before
        (its first resolution stands).
        """
        transfer_id = parse_transfer_id(transfer_id)
        note = check_text(note, field="--note", limit=MAX_NOTE)
        by = check_text(by, field="--by", limit=MAX_RESOLVER)
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(_RESOLVE, (by, note, transfer_id))
            row = await cur.fetchone()
            if row is not None:
                return dict(zip(COLUMNS, row, strict=True))
            await cur.execute(
                "SELECT resolved_at, resolved_by, resolution_note FROM unmatched_transfers"
                " WHERE transfer_id = %s",
                (transfer_id,),
            )
            found: Sequence[Any] | None = await cur.fetchone()
        if found is None:
            raise UnknownTransfer(f"no unmatched transfer {transfer_id}")
        resolved_at, resolved_by, resolution_note = found
        raise AlreadyResolved(
            f"{transfer_id} was resolved at {resolved_at.isoformat()} by {resolved_by}: "
            f"{resolution_note}"
        )
