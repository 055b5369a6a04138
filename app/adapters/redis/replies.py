"""Answers from agents to the HTTP requests waiting for them, through Redis pub/sub.

An HTTP request that sends a command to an agent (create, cancel) waits for the agent's answer.
Each worker listens on one Redis channel of its own; the command carries that channel and a
request id, and the agent publishes its answer there. Nothing durable rides on it: an answer that
is lost (the worker restarted, Redis blinked) only makes the request time out, and the merchant's
retry is harmless because commands are idempotent.

While this worker cannot hear its channel (Redis unreachable), a waiting request may be answered
another way: ``wait``'s ``otherwise`` is asked every half second (for a create, the invoice from
its owner's table: app/runtime/commands.py), and once more when the time is up.

(Faust's ask/reply over a Kafka reply topic leaves the last reply unacknowledged, which blocks
a worker's shutdown and rebalances while it waits for it; this avoids that.)
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
import redis.exceptions

logger = logging.getLogger(__name__)

CHANNEL_PREFIX = "checkout:replies:"
OTHERWISE_EVERY = 0.5  # seconds between asking ``otherwise`` while the channel is unheard

# An answer found another way (``wait``'s ``otherwise``); None: not yet.
Otherwise = Callable[[], Awaitable[dict[str, Any] | None]]


class ReplyTimeout(TimeoutError):
    """No answer arrived in time; the command may still be applied."""


class CommandReplies:
    """One worker's mailbox: a Redis channel and the requests waiting on it."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self.channel = f"{CHANNEL_PREFIX}{secrets.token_hex(8)}"
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        # False from a failed read of the channel until a read succeeds again: answers published
        # meanwhile are lost (pub/sub keeps nothing).
        self.listening = True

    async def listen(self) -> None:
        """Deliver answers to waiting requests until cancelled (the worker's background task)."""
        await self._pubsub.subscribe(self.channel)
        try:
            while True:
                try:
                    message = await self._pubsub.get_message(timeout=1.0)
                except (ConnectionError, redis.exceptions.ConnectionError) as exc:
                    if self.listening:
                        logger.warning("reply channel %s: %s; listening again", self.channel, exc)
                    self.listening = False
                    await asyncio.sleep(0.5)
                    continue
                if not self.listening:
                    logger.info("reply channel %s heard again", self.channel)
                    self.listening = True
                if message is not None:
                    self._deliver(message["data"])
        finally:
            await self._pubsub.aclose()

    def _deliver(self, raw: bytes) -> None:
        try:
            answer = orjson.loads(raw)
            future = self._waiting.get(answer["request_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            logger.warning("unreadable reply on %s: %r", self.channel, raw[:200])
            return
        if future is not None and not future.done():
            future.set_result(answer["answer"])

    def new_request(self) -> tuple[dict[str, str], asyncio.Future[dict[str, Any]]]:
        """The reply address to put on a command, and the future its answer will resolve."""
        request_id = secrets.token_hex(12)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        return {"channel": self.channel, "request_id": request_id}, future

    async def wait(
        self,
        reply_to: dict[str, str],
        future: asyncio.Future[dict[str, Any]],
        seconds: float,
        *,
        otherwise: Otherwise | None = None,
    ) -> dict[str, Any]:
        """The answer to the request, within ``seconds``; ``otherwise`` (see the module)."""
        try:
            return await self._wait(future, seconds, otherwise)
        finally:
            self._waiting.pop(reply_to["request_id"], None)

    async def _wait(
        self, future: asyncio.Future[dict[str, Any]], seconds: float, otherwise: Otherwise | None
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            done, _ = await asyncio.wait({future}, timeout=min(left, OTHERWISE_EVERY))
            if done:
                return future.result()
            if otherwise is not None and not self.listening:
                found = await otherwise()
                if found is not None:
                    return found
        if future.done():
            return future.result()
        # Heard or not, the answer may have been lost on its way (the agent's side of Redis).
        found = None if otherwise is None else await otherwise()
        if found is None:
            raise ReplyTimeout(f"no answer within {seconds:g} s")
        return found

    async def send_reply(self, reply_to: dict[str, str], answer: dict[str, Any]) -> None:
        """Answer a request waiting on any worker (the invoice agent's side)."""
        await send_reply(self._redis, reply_to, answer)


async def send_reply(
    client: aioredis.Redis, reply_to: dict[str, str], answer: dict[str, Any]
) -> None:
    """Publish an agent's answer; a failure only costs the caller a timeout, so it is logged."""
    try:
        await client.publish(
            reply_to["channel"],
            orjson.dumps({"request_id": reply_to["request_id"], "answer": answer}),
        )
    except (redis.exceptions.RedisError, OSError) as exc:
        logger.warning("could not answer request %s: %s", reply_to.get("request_id"), exc)
