"""The audit log in PostgreSQL (migrations/0009_access.sql): append and read, nothing else.

The table refuses UPDATE, DELETE and TRUNCATE for every role (a trigger), so an entry once
written stays as written; this adapter has no way to change one either. Entry ids grow with
every append, which is what readers page by.
"""

# SQL built from constant column lists and conditions; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson
from psycopg2.extras import Json

from app.adapters.postgres.pool import Connections
from app.services.ports import AuditEntry

MAX_ENTRIES: Final = 500

_COLUMNS: Final = (
    "entry_id, occurred_at, merchant_id, actor_kind, actor_id, actor_role, action, target_id,"
    " request_id, client_address, result, details"
)


def _dumps(value: Any) -> str:
    # A detail of a type JSON lacks (a Decimal, a datetime) is written as its text rather than
    # losing the whole entry: an audit entry must not fail on what it describes.
    return orjson.dumps(value, default=str).decode()


def entry_from_row(row: Sequence[Any]) -> AuditEntry:
    (entry_id, occurred_at, merchant_id, actor_kind, actor_id, actor_role, action, target_id,
     request_id, client_address, result, details) = row  # fmt: skip
    return AuditEntry(
        action=action,
        result=result,
        actor_kind=actor_kind,
        merchant_id=merchant_id,
        actor_id=actor_id,
        actor_role=actor_role,
        target_id=target_id,
        request_id=request_id,
        client_address=client_address,
        details=details,
        entry_id=entry_id,
        occurred_at=occurred_at,
    )


class PostgresAuditLog:
    """``AuditLog`` over the worker's PostgreSQL pool."""

    def __init__(self, pool: Connections) -> None:
        self._pool = pool

    async def append(self, entry: AuditEntry) -> None:
        """Write one entry; its id and time are the database's (``entry_id`` and
        ``occurred_at`` given on ``entry`` are ignored), so they cannot be forged or reordered."""
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "INSERT INTO audit_log (merchant_id, actor_kind, actor_id, actor_role, action,"
                " target_id, request_id, client_address, result, details)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (entry.merchant_id, entry.actor_kind, entry.actor_id, entry.actor_role,
                 entry.action, entry.target_id, entry.request_id, entry.client_address,
                 entry.result, Json(dict(entry.details), dumps=_dumps)),
            )  # fmt: skip

    async def entries(
        self, merchant_id: str | None, *, after: int | None, limit: int
    ) -> list[AuditEntry]:
        """Oldest first, after entry ``after`` (exclusive); ``merchant_id`` None: every
        merchant's and the platform's own. ``limit`` is held to 1 … ``MAX_ENTRIES``."""
        conditions: list[str] = []
        values: list[Any] = []
        if merchant_id is not None:
            conditions.append("merchant_id = %s")
            values.append(merchant_id)
        if after is not None:
            conditions.append("entry_id > %s")
            values.append(after)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                f"SELECT {_COLUMNS} FROM audit_log{where} ORDER BY entry_id LIMIT %s",
                (*values, max(1, min(limit, MAX_ENTRIES))),
            )
            rows = await cur.fetchall()
        return [entry_from_row(row) for row in rows]
