"""A watchdog for partitions whose messages stop reaching the agents after a rebalance.

After a worker hands its partitions over, faust-streaming sometimes leaves a taken-over
partition with messages in Kafka that its consumer never delivers to the agents (the offsets
stay uncommitted, so nothing is lost, but payments wait until the next rebalance; compare
faust-streaming issue 629). The watchdog (a timer, agents/stall_watchdog.py) notices it from
outside Faust's own bookkeeping: for each partition of our source topics it compares the broker's
end offset with the next offset the consumer would hand to an agent, and when that position has
not moved for ``STALL_SECONDS`` while messages are waiting, it seeks the partition back to its
committed offset. Faust then fetches and delivers from there; every handler is idempotent, so
what is delivered twice changes nothing (DESIGN.md, "Correctness under failure").

It also repairs holes: a message Faust skipped after a rebalance while later ones were
acknowledged. app/runtime/commit_guard.py keeps the committed offset at the hole; Faust's read
offset is then past the skipped message, so it would never be delivered again by itself. When the
committed offset has not moved for ``HOLE_SECONDS`` the partition is sought back to it, however
busy the partition is. A hole at an offset the broker no longer keeps (retention) cannot be
delivered again: it is logged as an error and committing resumes from the first offset the
broker has.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from prometheus_client import Counter

from app.runtime.commit_guard import committed_hole

logger = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 5.0
# Longer than any single message takes in normal operation, short next to a payment's patience.
STALL_SECONDS = 20.0
# Every agent acknowledges in order (concurrency=1), so a hole is never a message still being
# processed: it is repaired at the next check or the one after.
HOLE_SECONDS = 5.0

PARTITION_RESTARTS = Counter(
    "checkout_stalled_partition_seeks",
    "Partitions whose waiting messages were not delivered, sought back to their committed offset",
    ["topic"],
)


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
    ) -> bool:
        """Whether ``tp`` should be sought back: messages wait and nothing moved for too long.

        ``read`` is Faust's read offset, ``committed`` its committed offset (the next to
        process), ``end`` the broker's end offset (one past the last message). ``hole``: the
        message at the committed offset was skipped while later ones were acknowledged; then only
        the committed offset counts as progress, and ``hole_seconds`` is too long.
        """
        if end <= (committed or 0):
            self._since.pop(tp, None)  # everything there is was processed and committed
            return False
        progress = (read, committed)
        seen, since = self._since.get(tp, (progress, now))
        if seen != progress:
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
    ) -> None:
        self._app = app
        self._sources = sources
        self._bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        self._tracker = tracker or StallTracker(STALL_SECONDS, HOLE_SECONDS)
        self._offsets_client: AIOKafkaConsumer | None = None
        self._closed = False

    async def _offsets_reader(self) -> AIOKafkaConsumer:
        """A plain client for the broker's offsets (Faust's view may be what is stuck)."""
        if self._offsets_client is None:
            client = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap_servers,
                client_id=self._client_id,
                enable_auto_commit=False,
            )
            await client.start()
            self._offsets_client = client
        return self._offsets_client

    async def close(self) -> None:
        self._closed = True  # a check still scheduled must not open a client nobody closes
        if self._offsets_client is not None:
            await self._offsets_client.stop()
            self._offsets_client = None

    async def _end_offsets(self, partitions: list[Any]) -> dict[Any, int]:
        reader = await self._offsets_reader()
        wanted = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        answer = await reader.end_offsets(wanted)
        return {(tp.topic, tp.partition): offset for tp, offset in answer.items()}

    async def _first_offset(self, tp: Any) -> int:
        reader = await self._offsets_reader()
        partition = TopicPartition(tp.topic, tp.partition)
        return int((await reader.beginning_offsets([partition]))[partition])

    async def check(self) -> None:
        if self._closed:
            return
        app = self._app
        # Faust's Consumer: its offsets bookkeeping is not in ConsumerT.
        consumer: Any = app.consumer
        if app.rebalancing or consumer is None or not consumer.flow_active:
            self._tracker.reset()  # a rebalance moves everything: start counting afresh
            return
        partitions = [tp for tp in consumer.assignment() if tp.topic in self._sources]
        if not partitions:
            return
        try:
            ends = await self._end_offsets(partitions)
        except Exception as exc:  # a broker blip: the next check tries again
            logger.warning("stall watchdog: cannot read end offsets: %r", exc)
            return
        now = time.monotonic()
        for tp in partitions:
            await self._check_partition(consumer, tp, ends.get((tp.topic, tp.partition), 0), now)

    async def _check_partition(self, consumer: Any, tp: Any, end: int, now: float) -> None:
        committed = consumer._committed_offset.get(tp)
        # Faust's read offset: the last offset handed to the agents (the next one, right after
        # a seek); with the committed offset it tells whether anything moves. Past a hole only
        # the committed offset counts: later messages keep coming and being read.
        hole = committed_hole(consumer, tp)
        read = None if hole else consumer._read_offset.get(tp)
        tracker = self._tracker
        if not tracker.stalled(tp, read=read, committed=committed, end=end, now=now, hole=hole):
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
