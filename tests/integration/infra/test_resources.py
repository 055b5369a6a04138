"""Round trips through the worker's own clients: its aiopg pool and its redis.asyncio client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from app.bootstrap import Resources
from app.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]


@pytest.fixture
async def resources() -> AsyncIterator[Resources]:
    service = Resources(Settings.from_env())
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def test_postgres_pool_round_trip_in_a_transaction(resources: Resources) -> None:
    async with resources.db.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "CREATE TEMP TABLE round_trip (id text PRIMARY KEY, amount bigint NOT NULL)"
        )
        await cur.execute("BEGIN")
        await cur.execute("INSERT INTO round_trip VALUES (%s, %s)", ("inv_1", 9_990_000))
        await cur.execute("COMMIT")
        await cur.execute("SELECT id, amount FROM round_trip")
        assert await cur.fetchall() == [("inv_1", 9_990_000)]
        await cur.execute("SELECT name FROM schema_migrations ORDER BY name")
        migrations = [row[0] for row in await cur.fetchall()]
    assert migrations == sorted(migrations)


async def test_pool_is_shared_not_opened_per_use(resources: Resources) -> None:
    pool = resources.db.pool

    async def query() -> int:
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT pg_backend_pid()")
            row = await cur.fetchone()
            return int(row[0])

    pids = await asyncio.gather(*(query() for _ in range(30)))
    assert resources.db.pool is pool
    # 30 queries reuse at most the pool's maximum number of server connections.
    assert len(set(pids)) <= resources.settings.database_pool_max


async def test_redis_round_trip_and_pubsub(resources: Resources) -> None:
    key = f"test:{uuid.uuid4().hex}"
    await resources.redis.set(key, "pending", ex=60)
    assert await resources.redis.get(key) == b"pending"

    pubsub = resources.redis.pubsub()
    await pubsub.subscribe(key)
    try:
        await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        assert await resources.redis.publish(key, "paid") == 1
        message = None
        for _ in range(50):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message is not None:
                break
        assert message is not None and message["data"] == b"paid"
    finally:
        await pubsub.unsubscribe(key)
        await pubsub.aclose()
        await resources.redis.delete(key)
