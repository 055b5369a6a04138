"""The customer's live view of an invoice: built from domain events, held in Redis, fanned out.

Three layers, top to bottom:

- **The view, pure** (``apply_event``, ``render_view``): a fold of domain events into a private
  *state* document, and the public *view* rendered from it. Idempotent and order-tolerant: the
  state remembers the last applied ``aggregate_version`` of the invoice and of each payment, and
  an event at or below it changes nothing. A payment event that arrives before its invoice's
  ``InvoiceCreated`` (they travel on different partitions) is kept in the state and shows up
  once the invoice does; until then there is no view. Settlement events are merchant-only and
  ignored. The view never carries a fee field: it is built field by field, never copied from
  an event.
- **Redis** (``LiveInvoiceViews.apply`` / ``current``): the state lives at
  ``checkout:invoice:<id>:live-state``; a Lua compare-and-set writes it and PUBLISHes the new view
  on ``checkout:invoice:<id>:live`` in one step, so two workers applying events of one invoice
  at once never lose an update, and views are published in ``version`` order.
- **Fan-out** (``LiveInvoiceViews.subscribe``): one pub/sub connection per worker, shared by all
  its WebSocket and SSE clients, so a thousand customers cost one Redis connection.

See docs/payment-page.md for the view's fields and the message contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import orjson
import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError

from app.domain.events import (
    DomainEvent,
    InvoiceCreated,
    InvoicePaid,
    InvoicePaymentConfirmed,
    InvoicePaymentDetected,
    InvoicePaymentReverted,
    InvoiceProgress,
    PaymentConfirmationsUpdated,
    PaymentConfirmed,
    PaymentDetected,
    PaymentFailed,
    PaymentOrphaned,
)
from app.domain.money import format_usdt
from app.services.errors import LiveViewUnavailable

logger = logging.getLogger(__name__)

MAINNET_USDT_CONTRACT: Final = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
FINAL_STATUSES: Final = frozenset({"paid", "expired", "cancelled"})
# Payment statuses that still move: the customer is waiting on them.
UNSETTLED_PAYMENT_STATUSES: Final = frozenset({"detected", "confirming", "orphaned"})

# How long a view stays in Redis after its last change. After that the public endpoints ask the
# fallback (the read model), so the numbers only bound memory, never correctness.
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


# The live view could not be updated or read.
LiveViewError = LiveViewUnavailable


def token_contract_from_env() -> str:
    """The USDT contract shown to customers: ``TRON_USDT_CONTRACT``, as the chain watcher's."""
    return os.environ.get("TRON_USDT_CONTRACT", "").strip() or MAINNET_USDT_CONTRACT


def state_key(invoice_id: str) -> str:
    return f"checkout:invoice:{invoice_id}:live-state"


def channel_name(invoice_id: str) -> str:
    return f"checkout:invoice:{invoice_id}:live"


# --- the view, pure --------------------------------------------------------------------------

State = dict[str, Any]
View = dict[str, Any]


@dataclass(frozen=True)
class Applied:
    """What one event did: the new state to store, and the new view to publish (if it changed)."""

    state: State
    view: View | None


def invoice_id_of(event: DomainEvent) -> str | None:
    """The invoice an event is about, or None for events customers never see (settlements)."""
    if event.aggregate_type == "invoice":
        return event.aggregate_id
    if event.aggregate_type == "payment":
        return str(event.data.invoice_id)  # type: ignore[attr-defined]
    return None


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def empty_state(invoice_id: str) -> State:
    return {
        "invoice_id": invoice_id,
        "view_version": 0,
        "invoice_version": 0,
        "invoice": None,
        "progress": None,
        "paid_at": None,
        "payments": {},
    }


def _payment_entry(state: State, payment_id: str) -> dict[str, Any]:
    payments: dict[str, dict[str, Any]] = state["payments"]
    if payment_id not in payments:
        payments[payment_id] = {
            "tx_hash": payment_id.split(":", 1)[0],
            "amount": None,
            "required_confirmations": None,
            "chain_version": 0,
            "chain_status": None,
            "confirmations": 0,
            "invoice_status": None,
        }
    return payments[payment_id]


def _progress(data: InvoiceProgress) -> dict[str, Any]:
    return {
        "status": str(data.status),
        "payment_exception": None
        if data.payment_exception is None
        else str(data.payment_exception),
        "amount_received": format_usdt(data.amount_received),
        "amount_confirmed": format_usdt(data.amount_confirmed),
        "amount_due": format_usdt(data.amount_due),
    }


def _merge_invoice_created(state: State, event: InvoiceCreated) -> None:
    data = event.data
    # Static facts: merged even when the event is late (they never change).
    if state["invoice"] is None:
        state["invoice"] = {
            "amount": format_usdt(data.amount),
            "deposit_address": data.deposit_address,
            "required_confirmations": data.required_confirmations,
            "created_at": _iso(event.occurred_at),
            "expires_at": _iso(data.expires_at),
            "order_id": data.order_id,
            "description": data.description,
        }
    if event.aggregate_version > state["invoice_version"]:
        state["invoice_version"] = event.aggregate_version
        state["progress"] = {
            "status": "pending",
            "payment_exception": None,
            "amount_received": "0",
            "amount_confirmed": "0",
            "amount_due": format_usdt(data.amount),
        }


_INVOICE_PAYMENT_STATUS: Final = {
    InvoicePaymentDetected: "detected",
    InvoicePaymentConfirmed: "confirmed",
}


def _merge_invoice_progress(state: State, event: DomainEvent) -> bool:
    if event.aggregate_version <= state["invoice_version"]:
        return False
    state["invoice_version"] = event.aggregate_version
    state["progress"] = _progress(event.data)  # type: ignore[arg-type]
    if isinstance(event, InvoicePaid):
        state["paid_at"] = _iso(event.occurred_at)
    if isinstance(event, InvoicePaymentDetected | InvoicePaymentConfirmed | InvoicePaymentReverted):
        entry = _payment_entry(state, event.data.payment_id)
        entry["amount"] = entry["amount"] or format_usdt(event.data.payment_amount)
        if isinstance(event, InvoicePaymentReverted):
            entry["invoice_status"] = event.data.reason
        else:
            entry["invoice_status"] = _INVOICE_PAYMENT_STATUS[type(event)]
    return True


def _merge_payment(state: State, event: DomainEvent) -> bool:
    entry = _payment_entry(state, event.aggregate_id)
    if event.aggregate_version <= entry["chain_version"]:
        return False
    entry["chain_version"] = event.aggregate_version
    data = event.data
    entry["amount"] = format_usdt(data.amount)  # type: ignore[attr-defined]
    match event:
        case PaymentDetected():
            entry.update(
                chain_status="detected",
                confirmations=0,
                tx_hash=event.data.tx_hash,
                required_confirmations=event.data.required_confirmations,
            )
        case PaymentConfirmationsUpdated() | PaymentConfirmed():
            entry.update(
                chain_status="confirmed" if isinstance(event, PaymentConfirmed) else "confirming",
                confirmations=event.data.confirmations,
                required_confirmations=event.data.required_confirmations,
            )
        case PaymentOrphaned():
            entry.update(chain_status="orphaned", confirmations=0)
        case PaymentFailed():
            entry.update(chain_status="failed")
    return True


def merge_event(state: State | None, event: DomainEvent) -> State | None:
    """``state`` with ``event`` folded in (a new dict), or None if the event changes nothing."""
    invoice_id = invoice_id_of(event)
    if invoice_id is None:
        return None
    merged: State = orjson.loads(orjson.dumps(state)) if state else empty_state(invoice_id)
    if isinstance(event, InvoiceCreated):
        before = (merged["invoice"], merged["invoice_version"])
        _merge_invoice_created(merged, event)
        changed = before != (merged["invoice"], merged["invoice_version"])
    elif event.aggregate_type == "invoice":
        changed = _merge_invoice_progress(merged, event)
    else:
        changed = _merge_payment(merged, event)
    return merged if changed else None


def _payment_status(entry: dict[str, Any]) -> str:
    """One status from the payment's own events and what the invoice said about it.

    ``confirmed`` and ``failed`` are final for a payment, so whichever source saw them first
    wins; otherwise the payment's own events (they carry confirmations) are the authority.
    """
    sources = (entry["chain_status"], entry["invoice_status"])
    if "confirmed" in sources:
        return "confirmed"
    if "failed" in sources:
        return "failed"
    return str(entry["chain_status"] or entry["invoice_status"])


def _render_payments(state: State, required: int) -> list[dict[str, Any]]:
    rendered = []
    for payment_id, entry in state["payments"].items():
        status = _payment_status(entry)
        needed = entry["required_confirmations"] or required
        confirmations = entry["confirmations"]
        if status == "confirmed":
            confirmations = max(confirmations, needed)
        elif status == "failed":
            confirmations = 0  # it will never count, whatever its block's depth
        rendered.append(
            {
                "payment_id": payment_id,
                "tx_hash": entry["tx_hash"],
                "amount": entry["amount"],
                "status": status,
                "confirmations": confirmations,
                "required_confirmations": needed,
            }
        )
    return rendered


def _confirmations(payments: list[dict[str, Any]], required: int) -> int:
    """What the customer waits on: the least-confirmed payment still confirming.

    ``required_confirmations`` once every counting payment is confirmed, 0 before any payment.
    """
    waiting = [p["confirmations"] for p in payments if p["status"] in ("detected", "confirming")]
    if waiting:
        return min(waiting)
    if any(p["status"] == "confirmed" for p in payments):
        return required
    return 0


def render_view(state: State | None, *, token_contract: str = MAINNET_USDT_CONTRACT) -> View | None:
    """The public view of ``state``, or None while its invoice has not been seen."""
    if state is None or state["invoice"] is None or state["progress"] is None:
        return None
    invoice, progress = state["invoice"], state["progress"]
    required = invoice["required_confirmations"]
    payments = _render_payments(state, required)
    return {
        "id": state["invoice_id"],
        "status": progress["status"],
        "payment_exception": progress["payment_exception"],
        "total": invoice["amount"],
        "usdt_amount": invoice["amount"],
        "currency": "USDT",
        "amount_received": progress["amount_received"],
        "amount_confirmed": progress["amount_confirmed"],
        "amount_due": progress["amount_due"],
        "deposit_address": invoice["deposit_address"],
        "network": "tron",
        "token_contract": token_contract,
        "required_confirmations": required,
        "confirmations": _confirmations(payments, required),
        "payments": payments,
        "created_at": invoice["created_at"],
        "expires_at": invoice["expires_at"],
        "paid_at": state["paid_at"],
        "description": invoice["description"],
        "order_id": invoice["order_id"],
        "version": state["view_version"],
    }


def _without_version(view: View | None) -> View | None:
    return None if view is None else {k: v for k, v in view.items() if k != "version"}


def apply_event(
    state: State | None, event: DomainEvent, *, token_contract: str = MAINNET_USDT_CONTRACT
) -> Applied | None:
    """Fold ``event`` into ``state``; None when it changes nothing (a duplicate, a stale version).

    The view's ``version`` goes up by one exactly when the rendered view changes.
    """
    merged = merge_event(state, event)
    if merged is None:
        return None
    before = render_view(state, token_contract=token_contract)
    after = render_view(merged, token_contract=token_contract)
    if after is None or _without_version(after) == _without_version(before):
        return Applied(merged, None)
    merged["view_version"] += 1
    after["version"] = merged["view_version"]
    return Applied(merged, after)


def is_settled(view: View) -> bool:
    """Nothing more is expected: a final status and no payment still moving on chain."""
    return view["status"] in FINAL_STATUSES and not any(
        p["status"] in UNSETTLED_PAYMENT_STATUSES for p in view["payments"]
    )


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

    def __init__(
        self, redis: aioredis.Redis, *, token_contract: str = MAINNET_USDT_CONTRACT
    ) -> None:
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
        raise LiveViewError(
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


_SHARED: weakref.WeakKeyDictionary[aioredis.Redis, LiveInvoiceViews] = weakref.WeakKeyDictionary()


def live_views_for(redis: aioredis.Redis) -> LiveInvoiceViews:
    """The one ``LiveInvoiceViews`` of a worker's Redis client (agent and web share it)."""
    views = _SHARED.get(redis)
    if views is None:
        views = _SHARED[redis] = LiveInvoiceViews(redis, token_contract=token_contract_from_env())
    return views


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
                raise LiveViewError(
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
