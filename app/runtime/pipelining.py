"""Acknowledge each message once everything it caused is on the broker — without waiting in line.

A money-moving agent must not let its consumer offset pass a message whose events or commands
Kafka has not acknowledged. Awaiting those acknowledgements message by message does that, but
then every message costs a broker round trip (acks=all) before the next one starts: a block with
a hundred transfers becomes a hundred round trips in a row, and the agent does nothing meanwhile.

``AckPipeline`` keeps the guarantee and drops the wait. The agent reads with manual acks
(``stream.noack()``); for each message it runs the handler, whose sends (app/runtime/publishing.py)
are
*collected* instead of awaited, and goes on to the next message. A background task acknowledges
the messages in their order, each only when all of its sends are acknowledged — so the committed
offset still never passes an effect that was only buffered — and then runs the agent's
``on_acknowledged`` (the invoice agent answers the HTTP caller there, never before the invoice is
durable). Messages are decided one at a time, in order, as before (``concurrency=1``): only the
waiting overlaps. At most ``window`` messages wait for their acknowledgements.

When a send fails (Kafka unavailable beyond aiokafka's own retries), no later message is
acknowledged. Before the next message the pipeline lets the outstanding sends settle, then runs
every unacknowledged message's handler again, in order, awaiting each one's sends, retrying for as
long as it takes. That is safe because every handler is idempotent: run again, it re-publishes the
same events with the same ids (the domain finds them in the aggregate's history).

With tracing on, each run of the handler is a ``<agent> process`` span, child of the trace context
the message's headers carry; it is current while the handler runs, so its sends carry it on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar, cast

import faust
from prometheus_client import Counter, Gauge

from app.adapters import telemetry
from app.runtime.retry import retry_transient
from app.runtime.shutdown import never_stopping

logger = logging.getLogger(__name__)

R = TypeVar("R")

DEFAULT_WINDOW = 500

_collected: ContextVar[list[Awaitable[Any]] | None] = ContextVar("collected_sends", default=None)

AWAITING_ACKS = Gauge(
    "checkout_pipeline_awaiting_acks",
    "Messages processed by an agent and waiting for Kafka to acknowledge what they caused",
    ["agent"],
)
PIPELINE_REPLAYS = Counter(
    "checkout_pipeline_replays",
    "Times an agent ran its unacknowledged messages again after a send failed",
    ["agent"],
)


def defer_acknowledgement(pending: Sequence[Awaitable[Any]]) -> bool:
    """Hand ``pending`` sends to the message being processed; False when there is none.

    Called by app/runtime/publishing.py: inside an ``AckPipeline`` handler the sends are awaited
    before the message is acknowledged; anywhere else the caller awaits them itself.
    """
    collected = _collected.get()
    if collected is None:
        return False
    collected.extend(pending)
    return True


@contextmanager
def _collecting() -> Iterator[list[Awaitable[Any]]]:
    sends: list[Awaitable[Any]] = []
    token = _collected.set(sends)
    try:
        yield sends
    finally:
        _collected.reset(token)


@dataclass
class _Processed(Generic[R]):
    event: faust.EventT
    result: R
    sends: list[Awaitable[Any]]


class AckPipeline(Generic[R]):
    """One agent's messages: decided in order, acknowledged in order once their sends are."""

    def __init__(
        self,
        stream: faust.StreamT[Any],
        agent: str,
        handle: Callable[[faust.EventT], Awaitable[R]],
        *,
        on_acknowledged: Callable[[faust.EventT, R], Awaitable[None]] | None = None,
        window: int = DEFAULT_WINDOW,
        hold: Callable[[], Awaitable[None]] = never_stopping,
    ) -> None:
        # faust.StreamT declares neither noack() nor _set_current_event(); faust.Stream has both.
        self._stream = cast(faust.Stream, stream)
        self._agent = agent
        self._handle = handle
        self._on_acknowledged = on_acknowledged
        self._window = window
        # app/runtime/shutdown.py: never returns while the worker's tables are stopping.
        self._hold = hold
        self._waiting: deque[_Processed[R]] = deque()
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._failure: BaseException | None = None
        self._acker: asyncio.Task[None] | None = None
        self._gauge = AWAITING_ACKS.labels(agent=agent)
        self._span_name = f"{agent} process"

    async def run(self) -> None:
        """The agent's loop: every message of the stream, until the agent is cancelled."""
        try:
            async for event in self._stream.noack().events():
                await self._hold()
                await self.submit(event)
        finally:
            await self.close()

    async def submit(self, event: faust.EventT) -> None:
        """Decide one message now; acknowledge it once its sends are acknowledged."""
        while len(self._waiting) >= self._window and self._failure is None:
            self._room.clear()
            await self._room.wait()
        if self._failure is not None:
            await self._replay()
        with _collecting() as sends:
            result = await self._handler()(event)
        # Its table reads may have met closed tables: never acknowledged then.
        await self._hold()
        self._waiting.append(_Processed(event, result, sends))
        self._gauge.set(len(self._waiting))
        self._arrived.set()
        self._ensure_acker()

    async def close(self) -> None:
        if self._acker is not None:
            self._acker.cancel()
            await asyncio.gather(self._acker, return_exceptions=True)
            self._acker = None

    def _ensure_acker(self) -> None:
        if self._acker is None or self._acker.done():
            self._acker = asyncio.create_task(self._acknowledge(), name=f"{self._agent}-acks")

    async def _acknowledge(self) -> None:
        while True:
            if not self._waiting:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            processed = self._waiting[0]
            try:
                await asyncio.gather(*processed.sends)
            except Exception as exc:
                # Nothing from here on is acknowledged; the agent replays before its next message.
                logger.warning(
                    "%s: a send for the message at %s offset %s failed (%r); its unacknowledged "
                    "messages will be processed again",
                    self._agent,
                    processed.event.message.tp,
                    processed.event.message.offset,
                    exc,
                )
                self._failure = exc
                self._room.set()
                return
            await self._finish(processed.event, processed.result)
            self._waiting.popleft()
            self._gauge.set(len(self._waiting))
            self._room.set()

    async def _finish(self, event: faust.EventT, result: R) -> None:
        event.ack()
        if self._on_acknowledged is not None:
            await self._on_acknowledged(event, result)

    async def _replay(self) -> None:
        PIPELINE_REPLAYS.labels(agent=self._agent).inc()
        current = self._stream.current_event
        outstanding = [send for processed in self._waiting for send in processed.sends]
        await asyncio.gather(*outstanding, return_exceptions=True)
        try:
            while self._waiting:
                processed = self._waiting[0]
                # Table writes go to the partition of the message being handled.
                self._stream._set_current_event(processed.event)
                result = await retry_transient(
                    partial(self._handle_and_await, processed.event), what=f"{self._agent} replay"
                )
                await self._finish(processed.event, result)
                self._waiting.popleft()
                self._gauge.set(len(self._waiting))
        finally:
            self._stream._set_current_event(current)
        self._failure = None
        logger.info("%s: replay done; pipelining again", self._agent)

    async def _handle_and_await(self, event: faust.EventT) -> R:
        with _collecting() as sends:
            result = await self._handler()(event)
        await asyncio.gather(*sends)
        return result

    def _handler(self) -> Callable[[faust.EventT], Awaitable[R]]:
        # Tracing off: the handler itself, not even a wrapper's frame on the hot path.
        return self._traced_handle if telemetry.active() else self._handle

    async def _traced_handle(self, event: faust.EventT) -> R:
        message = event.message
        with telemetry.consumer_span(
            self._span_name,
            message.headers,
            telemetry.record_attributes(message.topic, message.partition, message.offset),
        ):
            return await self._handle(event)
