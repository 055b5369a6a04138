"""What the operator's commands do on Kafka itself (app/runtime/*_commands.py).

- ``consumer_lag``: per consumer group, topic and partition, the committed offset against the
  partition's end (its high watermark); a partition without a commit counts from its start.
- ``read_topic``: a snapshot of a topic from its first kept record to the end offsets of when the
  read began (records produced meanwhile are left for the next read). Bounded by ``limit``.
- ``produce``: records with keys and headers, each acknowledged by the brokers (``acks=all``)
  before the call returns, in order.
- ``delete_before``: Kafka's DeleteRecords: every record of a partition below an offset goes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

REQUEST_TIMEOUT_MS: Final = 15_000
# A read ends when every partition reached its end offset, or after this long without a record
# (a partition whose last offsets are transaction markers never hands out its end offset).
READ_IDLE_MS: Final = 3_000


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None  # None: the group never committed on this partition
    start: int  # the first offset the partition still keeps
    end: int

    @property
    def lag(self) -> int:
        """Records the group has still to consume (from the start when it never committed)."""
        return max(0, self.end - max(self.start, self.committed or 0))


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


class KafkaOperations:
    """Short-lived clients for one command; ``async with`` closes them."""

    def __init__(self, bootstrap_servers: str, *, client_id: str = "checkout-cli") -> None:
        self._servers = bootstrap_servers
        self._client_id = client_id
        self._admin: AIOKafkaAdminClient | None = None
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> KafkaOperations:
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=self._servers,
            client_id=self._client_id,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
        )
        await self._admin.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._producer is not None:
            await self._producer.stop()  # sends what is still buffered first
        if self._admin is not None:
            await self._admin.close()

    @property
    def admin(self) -> AIOKafkaAdminClient:
        assert self._admin is not None, "use KafkaOperations in `async with`"
        return self._admin

    async def topics(self) -> list[str]:
        return sorted(await self.admin.list_topics())

    async def groups(self) -> list[str]:
        return sorted(str(group[0]) for group in await self.admin.list_consumer_groups())

    async def consumer_lag(self, groups: Iterable[str]) -> list[PartitionLag]:
        committed: dict[str, dict[TopicPartition, int]] = {}
        for group in groups:
            offsets = await self.admin.list_consumer_group_offsets(group)
            committed[group] = {tp: meta.offset for tp, meta in offsets.items()}
        # A group commits only the partitions it consumed from: every partition of a topic it
        # reads counts, a never-committed one from its start.
        topics = sorted({tp.topic for offsets in committed.values() for tp in offsets})
        every = {topic: await self.partitions(topic) for topic in topics}
        for offsets in committed.values():
            for topic in {tp.topic for tp in offsets}:
                for tp in every[topic]:
                    offsets.setdefault(tp, -1)
        partitions = {tp for offsets in committed.values() for tp in offsets}
        starts, ends = await self.watermarks(partitions)
        rows = [
            PartitionLag(
                group=group,
                topic=tp.topic,
                partition=tp.partition,
                committed=None if offset < 0 else offset,
                start=starts.get(tp, 0),
                end=ends.get(tp, 0),
            )
            for group, offsets in committed.items()
            for tp, offset in offsets.items()
        ]
        return sorted(rows, key=lambda row: (row.group, row.topic, row.partition))

    async def watermarks(
        self, partitions: Iterable[TopicPartition]
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        """Each partition's first kept offset and its end offset."""
        wanted = list(partitions)
        if not wanted:
            return {}, {}
        consumer = self._consumer()
        await consumer.start()
        try:
            starts = await consumer.beginning_offsets(wanted)
            ends = await consumer.end_offsets(wanted)
            return dict(starts), dict(ends)
        finally:
            await consumer.stop()

    async def partitions(self, topic: str) -> list[TopicPartition]:
        """The topic's partitions; none when it does not exist."""
        described = await self.admin.describe_topics([topic])
        numbers = [
            int(partition["partition"])
            for entry in described
            if entry["topic"] == topic and not entry["error_code"]
            for partition in entry["partitions"]
        ]
        return [TopicPartition(topic, number) for number in sorted(numbers)]

    async def read_topic(self, topic: str, *, limit: int) -> list[Record]:
        """Every kept record of ``topic`` up to the end offsets of now, oldest first per
        partition; at most ``limit`` (the first ones)."""
        partitions = await self.partitions(topic)
        if not partitions:
            return []
        consumer = self._consumer()
        await consumer.start()
        records: list[Record] = []
        try:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            open_ = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
            while open_ and len(records) < limit:
                batch = await consumer.getmany(*open_, timeout_ms=READ_IDLE_MS)
                if not batch:
                    break
                for tp, messages in batch.items():
                    for message in messages:
                        if message.offset < ends[tp]:
                            records.append(_record(message))
                    if await consumer.position(tp) >= ends[tp]:
                        open_.discard(tp)
        finally:
            await consumer.stop()
        records.sort(key=lambda record: (record.partition, record.offset))
        return records[:limit]

    async def produce(
        self,
        topic: str,
        records: Sequence[tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes]]]],
    ) -> list[tuple[int, int]]:
        """Send ``(key, value, headers)`` records in order; their (partition, offset)."""
        producer = await self._producer_started()
        # Sent back to back, awaited together: one idempotent producer keeps each partition's
        # order, and a batch costs one round of acknowledgements, not one per record.
        pending = [
            await producer.send(topic, value=value, key=key, headers=list(headers))
            for key, value, headers in records
        ]
        sent = await asyncio.gather(*pending)
        return [(metadata.partition, metadata.offset) for metadata in sent]

    async def _producer_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._servers,
                client_id=self._client_id,
                acks="all",
                enable_idempotence=True,
                request_timeout_ms=REQUEST_TIMEOUT_MS,
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def delete_before(self, offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Delete each partition's records below its offset; the new low watermarks."""
        if not offsets:
            return {}
        return dict(
            await self.admin.delete_records(
                {tp: RecordsToDelete(before_offset=offset) for tp, offset in offsets.items()},
                timeout_ms=REQUEST_TIMEOUT_MS,
            )
        )

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self._servers,
            client_id=self._client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=REQUEST_TIMEOUT_MS,
            isolation_level="read_committed",
        )


def _record(message: object) -> Record:
    return Record(
        topic=message.topic,  # type: ignore[attr-defined]
        partition=message.partition,  # type: ignore[attr-defined]
        offset=message.offset,  # type: ignore[attr-defined]
        timestamp_ms=message.timestamp,  # type: ignore[attr-defined]
        key=message.key,  # type: ignore[attr-defined]
        value=message.value,  # type: ignore[attr-defined]
        headers=tuple((str(k), bytes(v)) for k, v in message.headers),  # type: ignore[attr-defined]
    )
