"""A watchdog for partitions whose messages stop reaching the agents after a rebalance.

After a worker hands its partitions over, faust-streaming sometimes leaves a taken-over
partition with messages in Kafka that its consumer never delivers to the agents (the offsets
stay uncommitted, so nothing is lost, but payments wait until the next rebalance; compare
faust-streaming issue 629). This timer notices it from outside Faust's own bookkeeping: for each
partition of our source topics it compares the broker's end offset with the next offset the
consumer would hand to an agent, and when that position has not moved for
``STALL_SECONDS`` while messages are waiting, it seeks the partition back to its committed
offset. Faust then fetches and delivers from there; every handler is idempotent, so what is
delivered twice changes nothing (DESIGN.md, "Correctness under failure").

It also repairs holes: a message Faust skipped after a rebalance while later ones were
acknowledged. app/runtime/commit_guard.py keeps the committed offset at the hole; Faust's read
offset is then past the skipped message, so it would never be delivered again by itself. When the
committed offset has not moved for ``HOLE_SECONDS`` the partition is sought back to it, however busy
the partition is. A hole
at an offset the broker no longer keeps (retention) cannot be delivered again: it is logged as an
error and committing resumes from the first offset the broker has.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from prometheus_client import Counter

from app.faust_app import app, settings, topics
from app.runtime.commit_guard import committed_hole
from app.runtime.stall import StallTracker
from app.runtime.topics import DEPOSITS, DOMAIN_EVENTS, INVOICE_COMMANDS, NOTIFICATIONS

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

_WATCHED = (INVOICE_COMMANDS, DEPOSITS, DOMAIN_EVENTS, NOTIFICATIONS)
_SOURCES = {topics[spec.name].get_topic_name() for spec in _WATCHED}
_offsets_client: AIOKafkaConsumer | None = None


_tracker = StallTracker(STALL_SECONDS, HOLE_SECONDS)


async def _offsets_reader() -> AIOKafkaConsumer:
    """A plain client for the broker's offsets (Faust's view may be what is stuck)."""
    global _offsets_client
    if _offsets_client is None:
        _offsets_client = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id=f"{settings.app_id}-stall-watchdog",
            enable_auto_commit=False,
        )
        await _offsets_client.start()
    return _offsets_client


async def _end_offsets(partitions: list[Any]) -> dict[Any, int]:
    reader = await _offsets_reader()
    answer = await reader.end_offsets([TopicPartition(tp.topic, tp.partition) for tp in partitions])
    return {(tp.topic, tp.partition): offset for tp, offset in answer.items()}


async def _first_offset(tp: Any) -> int:
    reader = await _offsets_reader()
    partition = TopicPartition(tp.topic, tp.partition)
    return int((await reader.beginning_offsets([partition]))[partition])


@app.timer(interval=CHECK_EVERY_SECONDS)
async def seek_stalled_partitions() -> None:
    consumer: Any = app.consumer  # Faust's Consumer: its offsets bookkeeping is not in ConsumerT
    if app.rebalancing or consumer is None or not consumer.flow_active:
        _tracker.reset()  # a rebalance moves everything: start counting afresh
        return
    partitions = [tp for tp in consumer.assignment() if tp.topic in _SOURCES]
    if not partitions:
        return
    try:
        ends = await _end_offsets(partitions)
    except Exception as exc:  # a broker blip: the next check tries again
        logger.warning("stall watchdog: cannot read end offsets: %r", exc)
        return
    now = time.monotonic()
    for tp in partitions:
        committed = consumer._committed_offset.get(tp)
        end = ends.get((tp.topic, tp.partition), 0)
        # Faust's read offset: the last offset handed to the agents (the next one, right after
        # a seek); with the committed offset it tells whether anything moves. Past a hole only
        # the committed offset counts: later messages keep coming and being read.
        hole = committed_hole(consumer, tp)
        read = None if hole else consumer._read_offset.get(tp)
        if not _tracker.stalled(tp, read=read, committed=committed, end=end, now=now, hole=hole):
            continue
        if hole and committed is not None and committed < (first := await _first_offset(tp)):
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
            continue
        logger.warning(
            "stall watchdog: %s[%d] has messages up to offset %d, committed %s, and %s for %.0f s;"
            " seeking to the committed offset",
            tp.topic,
            tp.partition,
            end - 1,
            committed,
            "the committed message was never acknowledged" if hole else "nothing moved",
            _tracker.hole_seconds if hole else _tracker.stall_seconds,
        )
        PARTITION_RESTARTS.labels(topic=tp.topic).inc()
        await consumer.seek(tp, committed or 0)
