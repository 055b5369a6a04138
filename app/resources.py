"""The clients a worker shares: one PostgreSQL pool, one Redis client, one Kafka admin client.

They are opened when the worker starts and closed when it stops — never per request or per
event. The service is added to the Faust app as its first dependency, so it starts before the
agents and stops after them.
"""

from __future__ import annotations

import aiopg
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient
from mode import Service

from app.settings import Settings

# How long one health probe may take before it counts as "down".
PROBE_TIMEOUT_SECONDS = 2.0


class Resources(Service):
    """Owns the worker's connections to PostgreSQL, Redis and Kafka."""

    def __init__(self, settings: Settings, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.settings = settings
        self._db: aiopg.Pool | None = None
        self._redis: aioredis.Redis | None = None
        self._kafka_admin: AIOKafkaAdminClient | None = None

    @property
    def db(self) -> aiopg.Pool:
        if self._db is None:
            raise RuntimeError("the PostgreSQL pool is used before the worker started")
        return self._db

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("the Redis client is used before the worker started")
        return self._redis

    @property
    def kafka_admin(self) -> AIOKafkaAdminClient:
        if self._kafka_admin is None:
            raise RuntimeError("the Kafka admin client is used before the worker started")
        return self._kafka_admin

    async def on_start(self) -> None:
        # minsize=0: the worker starts even while PostgreSQL is down (it then reports not ready
        # on /readyz) and the pool reconnects by itself once PostgreSQL is back.
        self._db = await aiopg.create_pool(
            self.settings.database_url,
            minsize=0,
            maxsize=self.settings.database_pool_max,
            timeout=PROBE_TIMEOUT_SECONDS * 5,
        )
        self._redis = aioredis.from_url(
            self.settings.redis_url,
            socket_connect_timeout=PROBE_TIMEOUT_SECONDS,
            socket_timeout=PROBE_TIMEOUT_SECONDS * 5,
            health_check_interval=30,
        )
        self._kafka_admin = AIOKafkaAdminClient(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id=f"{self.settings.app_id}-admin",
            request_timeout_ms=int(PROBE_TIMEOUT_SECONDS * 1000),
        )
        await self._kafka_admin.start()

    async def on_stop(self) -> None:
        if self._kafka_admin is not None:
            await self._kafka_admin.close()
            self._kafka_admin = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._db is not None:
            self._db.close()
            await self._db.wait_closed()
            self._db = None
