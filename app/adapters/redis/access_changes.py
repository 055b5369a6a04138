"""News of changed credentials between workers: Redis pub/sub, one channel per platform.

A worker that revokes or rolls a key, changes or removes a user, or suspends a merchant
PUBLISHes the subject (``key:<id>``, ``user:<id>``, ``merchant:<id>``; ``webhooks:<merchant id>``
when a merchant's webhook endpoints change) on
``checkout:<app id>:access-changes``; every worker's listener hands it to
``AccessControl.forget``, which drops what it cached. The change itself is in PostgreSQL
already, so a lost message could only leave a stale cache entry, and the cache is only trusted
while the listener is sure to hear: ``healthy`` is True from a confirmed subscription until the
connection fails (then the worker asks PostgreSQL every time, and forgets everything when it
hears again, since news may have passed meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

import redis.asyncio as aioredis
import redis.exceptions
from prometheus_client import Gauge

logger = logging.getLogger(__name__)

CHANNEL: Final = "checkout:access-changes"
MAX_SUBJECT: Final = 200
_PING_EVERY: Final = 5.0

ACCESS_NEWS_LISTENING = Gauge(
    "checkout_access_changes_listening",
    "1 while this worker hears credential changes (and may cache keys and users), else 0",
)


class RedisAccessChanges:
    def __init__(self, redis: aioredis.Redis, *, channel: str = CHANNEL) -> None:
        self._redis = redis
        self._channel = channel
        self._on_change: Callable[[str], None] = lambda subject: None
        self.healthy = False

    def on_change(self, callback: Callable[[str], None]) -> None:
        self._on_change = callback

    async def announce(self, subject: str) -> None:
        try:
            await self._redis.publish(self._channel, subject[:MAX_SUBJECT])
        except (redis.exceptions.RedisError, OSError) as exc:
            # The change is in PostgreSQL; workers that cannot hear Redis do not cache either.
            logger.warning("could not announce the change of %s: %s", subject, exc)

    async def run(self) -> None:
        """Listen until cancelled, subscribing again after any failure."""
        while True:
            try:
                await self._listen()
            except (redis.exceptions.RedisError, OSError) as exc:
                logger.warning("access changes: %s; caching no credentials until heard again", exc)
            self._set_healthy(False)
            await asyncio.sleep(1.0)

    async def _listen(self) -> None:
        pubsub: Any = self._redis.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            since_ping = 0.0
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    since_ping += 1.0
                    if since_ping >= _PING_EVERY:
                        # A connection that died silently shows itself here, as an error.
                        await pubsub.ping()
                        since_ping = 0.0
                    continue
                if message["type"] == "subscribe":
                    # News may have passed while we were not listening: forget everything.
                    self._on_change("*")
                    self._set_healthy(True)
                elif message["type"] == "message":
                    data = message["data"]
                    subject = data.decode(errors="replace") if isinstance(data, bytes) else data
                    self._on_change(str(subject))
        finally:
            self._set_healthy(False)
            await pubsub.aclose()

    def _set_healthy(self, healthy: bool) -> None:
        if healthy != self.healthy:
            self.healthy = healthy
            ACCESS_NEWS_LISTENING.set(int(healthy))
            if not healthy:
                self._on_change("*")
