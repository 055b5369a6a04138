"""The clients a worker shares: one PostgreSQL pool, one Redis client, one Kafka admin client.

They are opened when the worker starts and closed when it stops — never per request or per
event. The service is added to the Faust app as its first dependency, so it starts before the
agents and stops after them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import aiopg
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient
from mode import Service

from app.adapters.redis.replies import CommandReplies
from app.adapters.tron.node import TronNode
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
        self._tron_node: TronNode | None = None
        self._replies: CommandReplies | None = None
        self._reply_listener: asyncio.Task[None] | None = None
        self._startup_hooks: list[Callable[[Resources], Awaitable[object]]] = []

    def on_ready(self, hook: Callable[[Resources], Awaitable[object]]) -> None:
        """Run ``hook`` once the clients are open, before the agents start."""
        self._startup_hooks.append(hook)

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

    @property
    def replies(self) -> CommandReplies:
        if self._replies is None:
            raise RuntimeError("the reply channel is used before the worker started")
        return self._replies

    @property
    def tron_node(self) -> TronNode:
        if self._tron_node is None:
            raise RuntimeError("the Tron node client is used before the worker started")
        return self._tron_node

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
        self._tron_node = TronNode.from_settings(self.settings.chain)
        self._replies = CommandReplies(self._redis)
        self._reply_listener = asyncio.create_task(self._replies.listen(), name="reply-listener")
        for hook in self._startup_hooks:
            await hook(self)

    async def on_stop(self) -> None:
        # The reply listener first: it must not read from the Redis client closed below.
        if self._reply_listener is not None:
            self._reply_listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reply_listener
            self._reply_listener = None
        if self._tron_node is not None:
            await self._tron_node.aclose()
            self._tron_node = None
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
