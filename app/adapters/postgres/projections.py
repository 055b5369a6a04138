"""Domain events → PostgreSQL: the append-only event store and the invoice read model.

``apply`` records one event in ``event_store`` and, for an invoice event, brings its row of
``invoice_summaries`` up to date, in one transaction (migrations/0007_event_store_read_models.sql
says how each table takes an event); an unmatched transfer gets its row in
``unmatched_transfers`` the same way (app/adapters/postgres/unmatched.py). Every write is
idempotent, so the projection agent may apply an event as often as Kafka redelivers it.

``InvoiceSummaries`` reads the read model for ``GET /api/v1/invoices``: newest first, keyset
pagination on ``(created_at, invoice_id)``, so an invoice created while a merchant pages through
the list neither repeats nor hides one.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import aiopg
import orjson

from app.adapters.postgres.pool import Connections
from app.adapters.postgres.unmatched import unmatched_statements
from app.domain.errors import CheckoutError
from app.domain.events import (
    DomainEvent,
    InvoiceCancelled,
    InvoiceCreated,
    InvoiceExpired,
    InvoicePaid,
    InvoicePaymentReverted,
    InvoiceProgress,
    InvoiceResolved,
    PaymentConfirmationsUpdated,
    PaymentConfirmed,
    PaymentDetected,
    PaymentOrphaned,
)
from app.domain.statuses import InvoiceStatus
from app.services.ports import InvoiceQuery, Page, Projected


class InvalidCursor(CheckoutError):
    """A pagination cursor that this API did not hand out."""

    code = "cursor_invalid"


# --- writing ------------------------------------------------------------------------------------


def _record_event(
    cursor: aiopg.Cursor, event: DomainEvent, partition: int | None, offset: int | None
) -> bytes:
    """Append ``event`` to the event store, unless it is there already (same id).

    The store's BEFORE INSERT trigger skips the row when the event's id is taken (the
    partitioned table cannot hold that key itself: migrations/0024_event_store_partitions.sql).
    """
    return cursor.mogrify(
        "INSERT INTO event_store (event_id, event_type, schema_version, aggregate_type,"
        " aggregate_id, aggregate_version, merchant_id, occurred_at, causation_id, payload,"
        " kafka_partition, kafka_offset)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)",
        (
            str(event.event_id),
            event.event_type,
            event.schema_version,
            event.aggregate_type,
            event.aggregate_id,
            event.aggregate_version,
            event.merchant_id,
            event.occurred_at,
            event.causation_id,
            event.model_dump_json(),  # the bytes publish_events put on the topic
            partition,
            offset,
        ),
    )


_UPSERT_PROGRESS: Final = (
    "INSERT INTO invoice_summaries AS s (invoice_id, merchant_id, status, payment_exception,"
    " amount, amount_received, amount_confirmed, amount_due, updated_at, aggregate_version)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (invoice_id) DO UPDATE SET status = EXCLUDED.status,"
    " payment_exception = EXCLUDED.payment_exception, amount = EXCLUDED.amount,"
    " amount_received = EXCLUDED.amount_received, amount_confirmed = EXCLUDED.amount_confirmed,"
    " amount_due = EXCLUDED.amount_due, updated_at = EXCLUDED.updated_at,"
    " aggregate_version = EXCLUDED.aggregate_version"
    " WHERE s.aggregate_version < EXCLUDED.aggregate_version"
)


_PAYMENT_SEEN: Final = """
    UPDATE invoice_summaries SET
        confirmations = %(confirmations)s,
        tx_hashes = CASE WHEN %(tx_hash)s = ANY(tx_hashes) THEN tx_hashes
            ELSE tx_hashes || %(tx_hash)s::text END,
        block_numbers = CASE WHEN %(tx_hash)s = ANY(tx_hashes)
            THEN block_numbers[:array_position(tx_hashes, %(tx_hash)s) - 1]
                || %(block)s::bigint
                || block_numbers[array_position(tx_hashes, %(tx_hash)s) + 1:]
            ELSE block_numbers || %(block)s::bigint END
    WHERE invoice_id = %(invoice_id)s
"""
_PAYMENT_CONFIRMATIONS: Final = (
    "UPDATE invoice_summaries SET confirmations = %s WHERE invoice_id = %s"
)


def _project_payment(cursor: aiopg.Cursor, event: DomainEvent) -> list[bytes]:
    """The payments' side of their invoice's summary: tx hashes and confirmations.

    ``tx_hashes`` keeps every transfer detected for the invoice, once, in order of detection,
    and ``block_numbers`` the block of each (re-mined after a reorg: its new block);
    ``confirmations`` is what the latest payment event said (0 once its block was reorganised
    away). Applied in the order of the events, like the rest of the summary.
    """
    match event:
        case PaymentDetected():
            detected = event.data
            seen = {
                "confirmations": 1,
                "tx_hash": detected.tx_hash,
                "block": detected.block_number,
                "invoice_id": detected.invoice_id,
            }
            return [cursor.mogrify(_PAYMENT_SEEN, seen)]
        case PaymentConfirmationsUpdated() | PaymentConfirmed():
            data = event.data
            return [cursor.mogrify(_PAYMENT_CONFIRMATIONS, (data.confirmations, data.invoice_id))]
        case PaymentOrphaned():
            return [cursor.mogrify(_PAYMENT_CONFIRMATIONS, (0, event.data.invoice_id))]
    return []


def summary_statements(cursor: aiopg.Cursor, event: DomainEvent) -> list[bytes]:
    """Bring the invoice's summary up to date with ``event``.

    Status and amounts come from the newest version seen, so an old event redelivered after a
    newer one changes nothing; the facts an event states once are filled in if still missing.
    A payment's events bring its tx hash and confirmations; other aggregates' are ignored.
    """
    if event.aggregate_type == "payment":
        return _project_payment(cursor, event)
    if event.aggregate_type != "invoice":
        return []
    progress = _progress(event)
    statements = [
        cursor.mogrify(
            _UPSERT_PROGRESS,
            (
                event.aggregate_id,
                event.merchant_id,
                str(progress["status"]),
                _text(progress["payment_exception"]),
                progress["amount"],
                progress["amount_received"],
                progress["amount_confirmed"],
                progress["amount_due"],
                event.occurred_at,
                event.aggregate_version,
            ),
        )
    ]
    facts = _facts(event)
    if facts:
        # COALESCE keeps the first value: a redelivery rewrites nothing.
        assignments = ", ".join(f"{column} = COALESCE({column}, %s)" for column in facts)
        statements.append(
            cursor.mogrify(
                f"UPDATE invoice_summaries SET {assignments} WHERE invoice_id = %s",  # noqa: S608 - column names are constants
                (*facts.values(), event.aggregate_id),
            )
        )
    if isinstance(event, InvoiceResolved):
        # The latest resolution by invoice version, whatever order the events come in.
        statements.append(
            cursor.mogrify(
                "UPDATE invoice_summaries SET resolution = %s, resolution_version = %s"
                " WHERE invoice_id = %s AND coalesce(resolution_version, 0) < %s",
                (
                    event.data.action,
                    event.aggregate_version,
                    event.aggregate_id,
                    event.aggregate_version,
                ),
            )
        )
    if isinstance(event, InvoicePaymentReverted) and event.data.reversed_round is not None:
        # Reopened by a reorg: not paid any more (paid again, the next InvoicePaid states when);
        # only while this is the newest event the summary holds.
        statements.append(
            cursor.mogrify(
                "UPDATE invoice_summaries SET paid_at = NULL"
                " WHERE invoice_id = %s AND aggregate_version = %s",
                (event.aggregate_id, event.aggregate_version),
            )
        )
    if isinstance(event, InvoiceResolved) and event.data.expires_at is not None:
        # An extension moves the deadline a fact once stated: only while this is the newest
        # event the summary holds (an older one redelivered later changes nothing).
        statements.append(
            cursor.mogrify(
                "UPDATE invoice_summaries SET expires_at = %s, expired_at = NULL"
                " WHERE invoice_id = %s AND aggregate_version = %s",
                (event.data.expires_at, event.aggregate_id, event.aggregate_version),
            )
        )
    return statements


def _progress(event: DomainEvent) -> dict[str, Any]:
    """Status and amounts after ``event`` (InvoiceCreated states them implicitly)."""
    if isinstance(event, InvoiceCreated):
        amount = event.data.amount
        return {
            "status": InvoiceStatus.PENDING,
            "payment_exception": None,
            "amount": amount,
            "amount_received": 0,
            "amount_confirmed": 0,
            "amount_due": amount,
        }
    if not isinstance(event.data, InvoiceProgress):
        raise TypeError(f"{event.event_type} is not an invoice event this projection knows")
    data = event.data
    return {
        "status": data.status,
        "payment_exception": data.payment_exception,
        "amount": data.amount,
        "amount_received": data.amount_received,
        "amount_confirmed": data.amount_confirmed,
        "amount_due": data.amount_due,
    }


def _facts(event: DomainEvent) -> dict[str, Any]:
    """The columns ``event`` states once and for all (column names are constants here)."""
    match event:
        case InvoiceCreated():
            data = event.data
            return {
                "order_id": data.order_id,
                "description": data.description,
                "metadata": orjson.dumps(data.metadata).decode(),
                "deposit_address": data.deposit_address,
                "required_confirmations": data.required_confirmations,
                "fee_percentage": data.fee_percentage,
                "created_at": event.occurred_at,
                "expires_at": data.expires_at,
                "redirect_url": data.redirect_url,
                "cancel_url": data.cancel_url,
                "underpaid_tolerance": data.underpaid_tolerance,
            }
        case InvoicePaid():
            return {"paid_at": event.occurred_at}
        case InvoiceExpired():
            return {"expired_at": event.occurred_at}
        case InvoiceCancelled():
            return {"cancelled_at": event.occurred_at, "cancellation_reason": event.data.reason}
    return {}


def _text(value: object) -> str | None:
    return None if value is None else str(value)


async def apply(
    pool: Connections, event: DomainEvent, partition: int | None, offset: int | None
) -> None:
    """Record ``event`` and project it, in one transaction: both happen or neither does.

    The statements go to PostgreSQL as one query string: one round trip, and — as every
    statement of one simple query — one implicit transaction that a failing statement rolls
    back whole. The projection agent applies every domain event this way, one at a time.
    """
    async with pool.acquire() as conn, conn.cursor() as cur:
        statements = [_record_event(cur, event, partition, offset), *_projected(cur, event)]
        await cur.execute(b";\n".join(statements).decode())


async def apply_batch(pool: Connections, batch: Sequence[Projected]) -> None:
    """Record and project every event of ``batch``, in order, in one transaction.

    One simple query again: a block of payments brings hundreds of events at once, and one round
    trip and one commit for all of them costs PostgreSQL and the worker a fraction of one each.
    A statement that fails rolls the whole batch back; the agent then applies the events one by
    one to find the one to dead-letter.
    """
    if not batch:
        return
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(batch_statements(cur, batch))


def batch_statements(cursor: aiopg.Cursor, batch: Sequence[Projected]) -> str:
    """The SQL that records and projects ``batch`` in order, as one query string."""
    statements: list[bytes] = []
    for event, partition, offset in batch:
        statements.append(_record_event(cursor, event, partition, offset))
        statements.extend(_projected(cursor, event))
    return b";\n".join(statements).decode()


def _projected(cursor: aiopg.Cursor, event: DomainEvent) -> list[bytes]:
    """What ``event`` changes besides the event store: the invoice's summary, an unmatched
    transfer's row (the other read models follow the event store's trigger)."""
    return [*summary_statements(cursor, event), *unmatched_statements(cursor, event)]


class EventProjections:
    """``ProjectionStore`` (app/services/ports.py): ``apply`` over the worker's pool."""

    def __init__(self, pool: Connections) -> None:
        self._pool = pool

    async def apply(self, event: DomainEvent, partition: int | None, offset: int | None) -> None:
        await apply(self._pool, event, partition, offset)

    async def apply_batch(self, batch: Sequence[Projected]) -> None:
        await apply_batch(self._pool, batch)


# --- reading ------------------------------------------------------------------------------------


def encode_cursor(created_at: datetime, invoice_id: str) -> str:
    """An opaque cursor for "after this invoice" in the newest-first order."""
    raw = orjson.dumps([created_at.isoformat(), invoice_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def page_of(rows: list[dict[str, Any]], limit: int, id_column: str) -> Page:
    """A newest-first page from ``limit + 1`` rows: the extra one only says another page follows,
    and the cursor is the last row shown."""
    if len(rows) <= limit:
        return Page(rows, None)
    last = rows[limit - 1]
    return Page(rows[:limit], encode_cursor(last["created_at"], last[id_column]))


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position ``encode_cursor`` made; ``InvalidCursor`` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_text, invoice_id = orjson.loads(raw)
        created_at = datetime.fromisoformat(created_text)
    except (binascii.Error, ValueError, TypeError):
        raise _bad_cursor() from None
    if created_at.tzinfo is None or not isinstance(invoice_id, str) or not invoice_id:
        raise _bad_cursor()
    return created_at, invoice_id


def _bad_cursor() -> InvalidCursor:
    return InvalidCursor(
        "cursor is not one this API returned; pass next_cursor from the previous page as is",
        param="cursor",
    )


SUMMARY_COLUMNS: Final = (
    "invoice_id",
    "merchant_id",
    "status",
    "payment_exception",
    "amount",
    "amount_received",
    "amount_confirmed",
    "amount_due",
    "order_id",
    "description",
    "metadata",
    "redirect_url",
    "cancel_url",
    "deposit_address",
    "required_confirmations",
    "fee_percentage",
    "created_at",
    "expires_at",
    "paid_at",
    "cancelled_at",
    "cancellation_reason",
    "expired_at",
    "updated_at",
    "aggregate_version",
    "tx_hashes",
    "block_numbers",
    "confirmations",
    "resolution",
    "underpaid_tolerance",
)


class InvoiceSummaries:
    """The invoice read model, for lists and dashboards."""

    def __init__(self, pool: Connections) -> None:
        self._pool = pool

    async def list(self, merchant_id: str, query: InvoiceQuery) -> Page:
        """The merchant's invoices matching every filter of ``query``, newest first.

        Invoices whose creation is not projected yet are left out.
        """
        clauses, params = _where(merchant_id, query)
        sql = (
            f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM invoice_summaries"  # noqa: S608 - constants
            f" WHERE {' AND '.join(clauses)}"
            " ORDER BY created_at DESC, invoice_id DESC LIMIT %s"
        )
        params.append(query.limit + 1)  # one more tells whether another page follows
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(sql, params)
            found = await cur.fetchall()
        rows = [dict(zip(SUMMARY_COLUMNS, row, strict=True)) for row in found]
        return page_of(rows, query.limit, "invoice_id")


def _where(merchant_id: str, query: InvoiceQuery) -> tuple[list[str], list[Any]]:
    """The conditions of a list query, each with its bound parameter."""
    return conditions(
        ("merchant_id = %s", merchant_id),
        ("created_at IS NOT NULL", ()),
        ("status = ANY(%s)", [str(item) for item in query.status]),
        ("payment_exception = ANY(%s)", [str(item) for item in query.payment_exception]),
        ("order_id = %s", query.order_id),
        *window(query.created_from, query.created_to, query.cursor, "invoice_id"),
    )


def window(
    created_from: datetime | None, created_to: datetime | None, cursor: str | None, id_column: str
) -> tuple[tuple[str, Any], ...]:
    """A newest-first list's creation window and keyset position, for ``conditions``."""
    return (
        ("created_at >= %s", created_from),
        ("created_at < %s", created_to),
        # id_column is a constant of the caller's, never input.
        (
            f"(created_at, {id_column}) < (%s, %s)",
            None if cursor is None else decode_cursor(cursor),
        ),
    )


def conditions(*candidates: tuple[str, Any]) -> tuple[list[str], list[Any]]:
    """SQL conditions and their parameters, leaving out those whose value is None or an empty
    list; a tuple binds one parameter per item (``()``: a condition with none)."""
    clauses: list[str] = []
    params: list[Any] = []
    for clause, value in candidates:
        if isinstance(value, tuple):
            if not value and "%s" in clause:
                continue
            params.extend(value)
        elif value is None or value == []:
            continue
        else:
            params.append(value)
        clauses.append(clause)
    return clauses, params
