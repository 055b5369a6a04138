"""The customers' live invoice views in Redis, and their fan-out to WebSocket and SSE clients.

- **Redis** (``LiveInvoiceViews.apply`` / ``current``): the state of each invoice's view (folded
  by app/services/live_view.py) lives at ``checkout:invoice:<id>:live-state``; a Lua
  compare-and-set writes it and PUBLISHes the new view on ``checkout:invoice:<id>:live`` in one
  step, so two workers applying events of one invoice at once never lose an update, and views are
  published in ``version`` order.
- **Fan-out** (``LiveInvoiceViews.subscribe``): one pub/sub connection per worker, shared by all
  its WebSocket and SSE clients, so a thousand customers cost one Redis connection.

See docs/payment-page.md for the view's fields and the message contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, Final

import orjson
import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError

from app.domain.events import DomainEvent
from app.services.errors import LiveViewUnavailable
from app.services.live_view import (
    FINAL_STATUSES,
    Applied,
    State,
    View,
    apply_event,
    invoice_id_of,
    render_view,
)

logger = logging.getLogger(__name__)

# How long a view stays in Redis after its last change. After that the public endpoints ask the
# fallback (the invoice's own history), so the numbers only bound memory, never correctness.
FINAL_VIEW_TTL: Final = timedelta(days=7)  # paid / expired / cancelled
OPEN_VIEW_TTL: Final = timedelta(days=30)  # safety net if an invoice never reaches a final status
HELD_STATE_TTL: Final = timedelta(days=1)  # payment events whose invoice was never seen

LIVE_EVENTS = Counter(
    "checkout_live_view_events",
    "Domain events applied to the customer live views, by outcome",
    ["outcome"],  # published | held (no invoice yet) | stored (no visible change) | ignored
)
LIVE_CAS_RETRIES = Counter(
    "checkout_live_view_cas_retries",
    "Live view writes retried because another worker changed the view at the same time",
)


def state_key(invoice_id: str) -> str:
    return f"checkout:invoice:{invoice_id}:live-state"


def channel_name(invoice_id: str) -> str:
    return f"checkout:invoice:{invoice_id}:live"


def state_ttl(state: State) -> timedelta:
    progress = state["progress"]
    if state["invoice"] is None or progress is None:
        return HELD_STATE_TTL
    return FINAL_VIEW_TTL if progress["status"] in FINAL_STATUSES else OPEN_VIEW_TTL


# --- Redis ------------------------------------------------------------------------------------

# Compare-and-set: write the new state only if the stored one is still what the caller read,
# and publish the new view in the same step, so publications follow the stored order.
_COMPARE_AND_SET: Final = """
local current = redis.call('GET', KEYS[1])
if current == false then current = '' end
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[5], ARGV[4]) end
return 1
"""

# Contention on one invoice is two or three workers at most; 50 rounds is far beyond it.
MAX_CAS_ATTEMPTS: Final = 50


class LiveInvoiceViews:
    """The live views in Redis: apply events, read the current view, subscribe to changes."""

    def __init__(self, redis: aioredis.Redis, *, token_contract: str) -> None:
        self.redis = redis
        self.token_contract = token_contract
        self._cas = redis.register_script(_COMPARE_AND_SET)
        self._fanout = _Fanout(redis, self.current)

    async def apply(self, event: DomainEvent) -> View | None:
        """Merge ``event`` into its invoice's view; the published view, or None if none changed."""
        invoice_id = invoice_id_of(event)
        if invoice_id is None:
            LIVE_EVENTS.labels(outcome="ignored").inc()
            return None
        key = state_key(invoice_id)
        for attempt in range(MAX_CAS_ATTEMPTS):
            if attempt:
                LIVE_CAS_RETRIES.inc()
            raw = await self.redis.get(key)
            state = orjson.loads(raw) if raw else None
            applied = apply_event(state, event, token_contract=self.token_contract)
            if applied is None:
                LIVE_EVENTS.labels(outcome="ignored").inc()
                return None
            view_json = orjson.dumps(applied.view) if applied.view is not None else b""
            ttl = int(state_ttl(applied.state).total_seconds())
            args = [
                raw or b"",
                orjson.dumps(applied.state),
                ttl,
                view_json,
                channel_name(invoice_id),
            ]
            if await self._cas(keys=[key], args=args):
                LIVE_EVENTS.labels(outcome=_outcome(applied)).inc()
                return applied.view
        raise LiveViewUnavailable(
            f"the live view of {invoice_id} changed {MAX_CAS_ATTEMPTS} times while applying "
            f"{event.event_type} {event.event_id}; retry the event"
        )

    async def current(self, invoice_id: str) -> View | None:
        raw = await self.redis.get(state_key(invoice_id))
        return render_view(orjson.loads(raw) if raw else None, token_contract=self.token_contract)

    def subscribe(self, invoice_id: str) -> contextlib.AbstractAsyncContextManager[Subscription]:
        """``async with views.subscribe(id) as changes``: every view published from now on.

        The subscription is confirmed by Redis when the block is entered, so reading
        ``current`` afterwards misses nothing.
        """
        return self._fanout.subscribe(invoice_id)

    async def aclose(self) -> None:
        """Stop the fan-out; every open subscription ends."""
        await self._fanout.aclose()


def _outcome(applied: Applied) -> str:
    if applied.view is not None:
        return "published"
    return "held" if applied.state["invoice"] is None else "stored"


# --- fan-out ----------------------------------------------------------------------------------

_RESYNC: Final = object()  # messages may have been lost: read the current view again
_CLOSED: Final = object()  # the fan-out stopped
# A slow client holds at most this many views; older ones are dropped (each view is complete,
# so the newest is all a client needs).
SUBSCRIBER_QUEUE: Final = 32
SUBSCRIBE_TIMEOUT: Final = 5.0


class Subscription:
    """The views published for one invoice after the subscription was confirmed."""

    def __init__(self, invoice_id: str, current: Callable[[str], Awaitable[View | None]]) -> None:
        self.invoice_id = invoice_id
        self._current = current
        self._queue: asyncio.Queue[object] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.closed = False

    def _put(self, item: object) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(item)

    async def next(self) -> View | None:
        """The next view; None once the fan-out has stopped (worker shutting down)."""
        while not self.closed:
            item = await self._queue.get()
            if item is _CLOSED:
                self.closed = True
            elif item is _RESYNC:
                with contextlib.suppress(RedisError, OSError):
                    view = await self._current(self.invoice_id)
                    if view is not None:
                        return view
            else:
                return item  # type: ignore[return-value]
        return None

    def __aiter__(self) -> AsyncIterator[View]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[View]:
        while (view := await self.next()) is not None:
            yield view


class _Fanout:
    """One Redis pub/sub connection per worker, shared by every subscriber of every invoice."""

    def __init__(
        self, redis: aioredis.Redis, current: Callable[[str], Awaitable[View | None]]
    ) -> None:
        self._redis = redis
        self._current = current
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribers: dict[str, set[Subscription]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def subscribe(self, invoice_id: str) -> AsyncIterator[Subscription]:
        channel = channel_name(invoice_id)
        subscription = Subscription(invoice_id, self._current)
        async with self._lock:
            if self._pubsub is None:
                self._pubsub = self._redis.pubsub()
            first = channel not in self._subscribers
            self._subscribers.setdefault(channel, set()).add(subscription)
            if first:
                self._confirmed[channel] = asyncio.Event()
        try:
            if first:
                await self._pubsub.subscribe(channel)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(), name="live-view-fanout")
            try:
                await asyncio.wait_for(self._confirmed[channel].wait(), SUBSCRIBE_TIMEOUT)
            except TimeoutError:
                raise LiveViewUnavailable(
                    f"Redis did not confirm the subscription to {channel}"
                ) from None
            yield subscription
        finally:
            await self._unsubscribe(channel, subscription)

    async def _unsubscribe(self, channel: str, subscription: Subscription) -> None:
        async with self._lock:
            subscribers = self._subscribers.get(channel)
            if subscribers is None:
                return
            subscribers.discard(subscription)
            if subscribers:
                return
            del self._subscribers[channel]
            self._confirmed.pop(channel, None)
        # A failed UNSUBSCRIBE leaves a channel nobody listens to; its messages are dropped.
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        backoff = 0.1
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as exc:
                logger.warning(
                    "live view fan-out lost Redis (%s); retrying in %.1f s", exc, backoff
                )
                self._broadcast(_RESYNC)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except Exception:
                # A bug, not an outage: keep serving the other invoices, and say so loudly.
                logger.exception("live view fan-out failed; retrying in %.1f s", backoff)
                self._broadcast(_RESYNC)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        raw_channel = message["channel"]
        channel = raw_channel.decode() if isinstance(raw_channel, bytes) else str(raw_channel)
        if message["type"] == "subscribe":
            confirmed = self._confirmed.get(channel)
            if confirmed is None:
                return
            if confirmed.is_set():
                # Resubscribed after a reconnection: changes may have been missed meanwhile.
                for subscription in self._subscribers.get(channel, ()):
                    subscription._put(_RESYNC)
            confirmed.set()
        elif message["type"] == "message":
            try:
                view = orjson.loads(message["data"])
            except orjson.JSONDecodeError:
                logger.error("live view fan-out: not JSON on %s, dropped", channel)
                return
            for subscription in self._subscribers.get(channel, ()):
                subscription._put(view)

    def _broadcast(self, item: object) -> None:
        for subscribers in self._subscribers.values():
            for subscription in subscribers:
                subscription._put(item)

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        self._broadcast(_CLOSED)
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
            self._pubsub = None
