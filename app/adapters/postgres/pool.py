"""The worker's one PostgreSQL pool, opened when the worker starts and closed when it stops.

Adapters are built when the platform is wired (app/bootstrap.py), before there is an event loop
to open a pool in; they hold a ``Database`` and take connections from it when they run. Anything
with ``acquire()`` will do in their place (an aiopg pool, in the integration tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import aiopg


class Connections(Protocol):
    """What the adapters need: ``async with db.acquire() as conn``."""

    def acquire(self) -> Any: ...


class Database:
    def __init__(self, url: str, *, maxsize: int, timeout: float) -> None:
        self._url = url
        self._maxsize = maxsize
        self._timeout = timeout
        self._pool: aiopg.Pool | None = None

    @property
    def pool(self) -> aiopg.Pool:
        if self._pool is None:
            raise RuntimeError("the PostgreSQL pool is used before the worker started")
        return self._pool

    def acquire(self) -> Any:
        return self.pool.acquire()

    async def open(self) -> None:
        # minsize=0: the worker starts even while PostgreSQL is down (it then reports not ready
        # on /readyz) and the pool reconnects by itself once PostgreSQL is back.
        self._pool = await aiopg.create_pool(
            self._url, minsize=0, maxsize=self._maxsize, timeout=self._timeout
        )

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            await self._pool.wait_closed()
            self._pool = None

    async def ping(self) -> None:
        async with self.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT 1")
            await cur.fetchone()


class SqlStore:
    """Base of the adapters: one statement, one row, all rows, or a transaction, each on a
    connection of its own from ``pool``."""

    def __init__(self, pool: Connections) -> None:
        self._pool = pool

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        """A cursor inside BEGIN … COMMIT; any exception (cancellation too) rolls back."""
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("BEGIN")
            try:
                yield cur
            except BaseException:
                await cur.execute("ROLLBACK")
                raise
            await cur.execute("COMMIT")

    async def _execute(self, sql: str, values: Sequence[Any]) -> None:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(sql, values)

    async def _fetchone(self, sql: str, values: Sequence[Any]) -> Sequence[Any] | None:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(sql, values)
            row: Sequence[Any] | None = await cur.fetchone()
            return row

    async def _fetchall(self, sql: str, values: Sequence[Any]) -> list[Sequence[Any]]:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(sql, values)
            rows: list[Sequence[Any]] = await cur.fetchall()
            return rows
