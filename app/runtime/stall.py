"""A watchdog for partitions whose messages stop reaching the agents after a rebalance.

After a worker hands its partitions over, faust-streaming sometimes leaves a taken-over
partition with messages in Kafka that its consumer never delivers to the agents (the offsets
stay uncommitted, so nothing is lost, but payments wait until the next rebalance; compare
faust-streaming issue 629). The watchdog (a timer, agents/stall_watchdog.py) notices it from
outside Faust's own bookkeeping: for each partition of our source topics it compares the broker's
end offset with the next offset the consumer would hand to an agent, and when that position has
not moved for ``STALL_SECONDS`` while messages are waiting, it seeks the partition back to its
committed offset. An agent waiting out PostgreSQL, Redis or Kafka holds its partition still on
purpose: while any does (app/runtime/retry.py, ``DEPENDENCY_WAITS``) the clock starts again.
After a seek Faust fetches and delivers from there; every handler is idempotent, so what is
delivered twice changes nothing (DESIGN.md, "Correctness under failure").

It also repairs holes: a message Faust skipped after a rebalance while later ones were
acknowledged. app/runtime/commit_guard.py keeps the committed offset at the hole; Faust's read
offset is then past the skipped message, so it would never be delivered again by itself. When the
committed offset has not moved for ``HOLE_SECONDS`` the partition is sought back to it, however
busy the partition is. A hole at an offset the broker no longer keeps (retention) cannot be
delivered again: it is logged as an error and committing resumes from the first offset the
broker has.

The watchdog reads the broker's offsets with a client of its own. A client that failed once (the
broker restarted, a timeout) is stopped and dropped, and the next check connects afresh: issue 18
found a cached client broken for good after the only broker came back, and the repair silently
stopped for the rest of the worker's life. A watchdog that cannot read offsets says so: one
WARNING when it goes blind and one when it checks again, ``checkout_stall_watchdog_failures_total``
and ``checkout_stall_watchdog_last_check_timestamp_seconds`` (alert StallWatchdogBlind,
docs/operations.md), and ``stall_watchdog`` in the operators' detailed ``/readyz``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from prometheus_client import Counter, Gauge

from app.runtime.commit_guard import committed_hole
from app.runtime.retry import DEPENDENCY_WAITS, DependencyWaits

logger = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 5.0
# Longer than any single message takes in normal operation, short next to a payment's patience.
STALL_SECONDS = 20.0
# Every agent acknowledges in order (concurrency=1), so a hole is never a message still being
# processed: it is repaired at the next check or the one after.
HOLE_SECONDS = 5.0
# Connecting and reading the offsets; longer is a failure (the check must not hang the timer).
OFFSETS_TIMEOUT_SECONDS = 10.0
# Failing for longer, the watchdog is reported down in the operators' detailed /readyz.
BLIND_SECONDS = 60.0

PARTITION_RESTARTS = Counter(
    "checkout_stalled_partition_seeks",
    "Partitions whose waiting messages were not delivered, sought back to their committed offset",
    ["topic"],
)
LAST_CHECK = Gauge(
    "checkout_stall_watchdog_last_check_timestamp_seconds",
    "When the stall watchdog last completed a check (read the offsets, or had nothing to check);"
    " the watchdog's start until its first",
)
CHECK_FAILURES = Counter(
    "checkout_stall_watchdog_failures",
    "Stall watchdog checks that could not read the broker's offsets",
)


class OffsetsClient(Protocol):
    """What the watchdog uses of aiokafka's ``AIOKafkaConsumer``."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    async def beginning_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]: ...


class OffsetsUnavailable(Exception):
    """The broker's offsets could not be read; the check is skipped and the client dropped."""


class StallTracker:
    """Remembers, per partition, since when nothing moved while messages were waiting."""

    def __init__(self, stall_seconds: float, hole_seconds: float | None = None) -> None:
        self.stall_seconds = stall_seconds
        # A hole never closes by itself (app/runtime/commit_guard.py): it may be sought back sooner.
        self.hole_seconds = stall_seconds if hole_seconds is None else hole_seconds
        self._since: dict[Any, tuple[Any, float]] = {}

    def reset(self) -> None:
        self._since.clear()

    def stalled(
        self,
        tp: Any,
        *,
        read: Any,
        committed: int | None,
        end: int,
        now: float,
        hole: bool = False,
        waiting: bool = False,
    ) -> bool:
        """Whether ``tp`` should be sought back: messages wait and nothing moved for too long.

        ``read`` is Faust's read offset, ``committed`` its committed offset (the next to
        process), ``end`` the broker's end offset (one past the last message). ``hole``: the
        message at the committed offset was skipped while later ones were acknowledged; then only
        the committed offset counts as progress, and ``hole_seconds`` is too long. ``waiting``:
        an agent of this worker waits out a dependency (PostgreSQL, Redis, Kafka down), so
        nothing moving is expected; the clock starts again (a hole is repaired all the same).
        """
        if end <= (committed or 0):
            self._since.pop(tp, None)  # everything there is was processed and committed
            return False
        progress = (read, committed)
        seen, since = self._since.get(tp, (progress, now))
        if seen != progress or (waiting and not hole):
            since = now
        if now - since < (self.hole_seconds if hole else self.stall_seconds):
            self._since[tp] = (progress, since)
            return False
        self._since.pop(tp, None)  # sought now: count afresh
        return True


class StallWatchdog:
    """One worker's watchdog over the partitions of ``sources`` it owns (``check`` every 5 s)."""

    def __init__(
        self,
        app: faust.App,
        sources: set[str],
        *,
        bootstrap_servers: str,
        client_id: str,
        tracker: StallTracker | None = None,
        connect: Callable[[], OffsetsClient] | None = None,
        clock: Callable[[], float] = time.time,
        waits: DependencyWaits = DEPENDENCY_WAITS,
    ) -> None:
        self._app = app
        self._waits = waits
        self._sources = sources
        self._bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        self._tracker = tracker or StallTracker(STALL_SECONDS, HOLE_SECONDS)
        self._connect = connect or self._kafka_client
        self._clock = clock
        self._offsets_client: OffsetsClient | None = None
        self._closed = False
        # Health: the last completed check (its start until the first, so that a watchdog that
        # never manages one is seen), and since when the checks fail.
        self._last_check = clock()
        LAST_CHECK.set(self._last_check)
        self._blind_since: float | None = None
        self._failures = 0
        self._last_error = ""

    def _kafka_client(self) -> OffsetsClient:
        """A plain client for the broker's offsets (Faust's view may be what is stuck)."""
        return AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            client_id=self._client_id,
            enable_auto_commit=False,
        )

    async def _offsets_reader(self) -> OffsetsClient:
        if self._offsets_client is None:
            client = self._connect()
            try:
                await client.start()
            except BaseException:  # failed or cut short: its connections must not leak
                await _stop_quietly(client)
                raise
            self._offsets_client = client
        return self._offsets_client

    async def _drop_offsets_reader(self) -> None:
        client, self._offsets_client = self._offsets_client, None
        if client is not None:
            await _stop_quietly(client)

    async def close(self) -> None:
        self._closed = True  # a check still scheduled must not open a client nobody closes
        await self._drop_offsets_reader()

    async def _read_offsets(
        self, partitions: list[Any], *, first: bool = False
    ) -> dict[tuple[str, int], int]:
        """The broker's end offsets of ``partitions`` (with ``first``, its first offsets)."""
        wanted = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        try:
            async with asyncio.timeout(OFFSETS_TIMEOUT_SECONDS):
                reader = await self._offsets_reader()
                if first:
                    answer = await reader.beginning_offsets(wanted)
                else:
                    answer = await reader.end_offsets(wanted)
        except Exception as exc:  # whatever it is, the next check tries with a new client
            raise OffsetsUnavailable(f"{type(exc).__name__}: {exc}".strip()) from exc
        return {(tp.topic, tp.partition): int(offset) for tp, offset in answer.items()}

    async def _first_offset(self, tp: Any) -> int:
        return (await self._read_offsets([tp], first=True))[(tp.topic, tp.partition)]

    async def check(self) -> None:
        if self._closed:
            return
        try:
            await self._check()
        except OffsetsUnavailable as exc:
            await self._drop_offsets_reader()
            self._failed(str(exc))
            return
        self._completed()

    async def _check(self) -> None:
        app = self._app
        # Faust's Consumer: its offsets bookkeeping is not in ConsumerT.
        consumer: Any = app.consumer
        if app.rebalancing or consumer is None or not consumer.flow_active:
            self._tracker.reset()  # a rebalance moves everything: start counting afresh
            return
        partitions = [tp for tp in consumer.assignment() if tp.topic in self._sources]
        if not partitions:
            return
        ends = await self._read_offsets(partitions)
        now = time.monotonic()
        # Agents waiting for a dependency hold their partitions still: no stall (retry.py).
        waiting = self._waits.active(now, within=CHECK_EVERY_SECONDS)
        for tp in partitions:
            end = ends.get((tp.topic, tp.partition), 0)
            await self._check_partition(consumer, tp, end, now, waiting)

    def _completed(self) -> None:
        now = self._clock()
        self._last_check = now
        LAST_CHECK.set(now)
        if self._blind_since is not None:
            logger.warning(
                "stall watchdog: checking again after %.0f s blind (%d failed checks)",
                now - self._blind_since,
                self._failures,
            )
            self._blind_since = None
            self._failures = 0

    def _failed(self, error: str) -> None:
        CHECK_FAILURES.inc()
        self._failures += 1
        self._last_error = error
        if self._blind_since is not None:
            logger.debug("stall watchdog: still cannot read the broker's offsets: %s", error)
            return
        self._blind_since = self._clock()
        # Once per outage: the detailed /readyz and StallWatchdogBlind say how long it lasts.
        logger.warning(
            "stall watchdog: cannot read the broker's offsets (%s); stalled partitions and skipped"
            " messages are not repaired until it can, a new client is tried every %.0f s",
            error,
            CHECK_EVERY_SECONDS,
        )

    def readiness(self) -> dict[str, object]:
        """``stall_watchdog`` of the operators' detailed /readyz: down after a minute blind.

        Only reported there, never deciding the worker's readiness (web/health.py, advisories):
        payments flow without the watchdog, which repairs a rare Faust defect, and taking the
        worker out of the load balancer would not make it see again.
        """
        if self._blind_since is None:
            return {"status": "up"}
        now = self._clock()
        failing = now - self._blind_since
        body: dict[str, object] = {
            "status": "up",
            "failing_for_s": round(failing, 1),
            "failures": self._failures,
        }
        if failing > BLIND_SECONDS:
            body["status"] = "down"
            body["error"] = (
                f"the stall watchdog has not read offsets for {now - self._last_check:.0f} s:"
                f" {self._last_error}"
            )
        return body

    async def _check_partition(
        self, consumer: Any, tp: Any, end: int, now: float, waiting: bool
    ) -> None:
        committed = consumer._committed_offset.get(tp)
        # Faust's read offset: the last offset handed to the agents (the next one, right after
        # a seek); with the committed offset it tells whether anything moves. Past a hole only
        # the committed offset counts: later messages keep coming and being read.
        hole = committed_hole(consumer, tp)
        read = None if hole else consumer._read_offset.get(tp)
        tracker = self._tracker
        if not tracker.stalled(
            tp, read=read, committed=committed, end=end, now=now, hole=hole, waiting=waiting
        ):
            return
        if hole and committed is not None and committed < (first := await self._first_offset(tp)):
            logger.error(
                "stall watchdog: %s[%d] offsets %d to %d were never acknowledged and the broker "
                "no longer has them; committing resumes from %d",
                tp.topic,
                tp.partition,
                committed,
                first - 1,
                first,
            )
            consumer._committed_offset[tp] = first
            return
        logger.warning(
            "stall watchdog: %s[%d] has messages up to offset %d, committed %s, and %s for %.0f s;"
            " seeking to the committed offset",
            tp.topic,
            tp.partition,
            end - 1,
            committed,
            "the committed message was never acknowledged" if hole else "nothing moved",
            tracker.hole_seconds if hole else tracker.stall_seconds,
        )
        PARTITION_RESTARTS.labels(topic=tp.topic).inc()
        await consumer.seek(tp, committed or 0)


async def _stop_quietly(client: OffsetsClient) -> None:
    # It is thrown away: a client broken by a broker outage may fail to stop, and that must not
    # keep the next check from connecting afresh.
    try:
        async with asyncio.timeout(OFFSETS_TIMEOUT_SECONDS):
            await client.stop()
    except Exception as exc:
        logger.debug("stall watchdog: the dropped offsets client did not stop cleanly: %r", exc)
