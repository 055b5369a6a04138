"""The worker's one PostgreSQL pool, opened when the worker starts and closed when it stops.

Adapters are built when the platform is wired (app/bootstrap.py), before there is an event loop
to open a pool in; they hold a ``Database`` and take connections from it when they run. Anything
with ``acquire()`` will do in their place (an aiopg pool, in the integration tests).

``checkout_db_pool_connections{state="in_use"|"idle"}`` and ``checkout_db_pool_max_connections``
say how much of the worker's pool is taken (monitoring/alerts.yml warns above 80 %): read from
the open pools when Prometheus scrapes, never counted on the way.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, Protocol

import aiopg
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


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
        OPEN_POOLS.add(self)

    async def close(self) -> None:
        OPEN_POOLS.discard(self)
        if self._pool is not None:
            self._pool.close()
            await self._pool.wait_closed()
            self._pool = None

    async def ping(self) -> None:
        async with self.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT 1")
            await cur.fetchone()


class PoolMetrics(Collector):
    """The open pools' connections, summed (a worker has one), when Prometheus asks."""

    def __init__(self) -> None:
        self._pools: weakref.WeakSet[Database] = weakref.WeakSet()

    def add(self, database: Database) -> None:
        self._pools.add(database)

    def discard(self, database: Database) -> None:
        self._pools.discard(database)

    def describe(self) -> list[GaugeMetricFamily]:
        return list(self._families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_use = idle = maximum = 0
        try:
            for database in list(self._pools):
                pool = database._pool
                if pool is None or pool.closed:
                    continue
                idle += pool.freesize
                in_use += pool.size - pool.freesize
                maximum += pool.maxsize or 0
        except Exception:  # a scrape must never break anything
            logger.exception("PostgreSQL pool metrics not read")
            return
        if maximum == 0:
            return  # no open pool: nothing to say
        connections, capacity = self._families()
        connections.add_metric(["in_use"], in_use)
        connections.add_metric(["idle"], idle)
        capacity.add_metric([], maximum)
        yield connections
        yield capacity

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "checkout_db_pool_connections",
                "PostgreSQL connections of the worker's pool: in use (or being opened) and idle",
                labels=["state"],
            ),
            GaugeMetricFamily(
                "checkout_db_pool_max_connections",
                "The most connections the worker's PostgreSQL pool opens (DATABASE_POOL_MAX)",
            ),
        )


OPEN_POOLS = PoolMetrics()
REGISTRY.register(OPEN_POOLS)


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


async def fetch_all(pool: Connections, sql: str, params: Mapping[str, Any]) -> list[Sequence[Any]]:
    """Every row of one statement with named parameters."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(sql, params)
        rows: list[Sequence[Any]] = await cur.fetchall()
        return rows
