"""Which dead letters were replayed (migration 0022): ``checkout dlq replay`` records each one
after Kafka acknowledged it on its source topic, so a second replay is refused unless forced and
``checkout dlq purge --replayed`` deletes only what went back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.adapters.postgres.pool import Connections


@dataclass(frozen=True)
class Replayed:
    dlq_topic: str
    partition: int
    offset: int
    source_topic: str
    error_type: str | None
    to_partition: int
    to_offset: int


class PostgresDeadLetterReplays:
    def __init__(self, pool: Connections) -> None:
        self._pool = pool

    async def replayed(self, dlq_topic: str) -> dict[tuple[int, int], int]:
        """(partition, offset) → how many times, for every replayed letter of ``dlq_topic``."""
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT dlq_partition, dlq_offset, replays FROM dead_letter_replays"
                " WHERE dlq_topic = %s",
                (dlq_topic,),
            )
            rows = await cur.fetchall()
        return {(int(p), int(o)): int(n) for p, o, n in rows}

    async def record(self, replays: Iterable[Replayed]) -> None:
        async with self._pool.acquire() as conn, conn.cursor() as cur, cur.begin():
            for item in replays:
                await cur.execute(
                    "INSERT INTO dead_letter_replays (dlq_topic, dlq_partition, dlq_offset,"
                    " source_topic, error_type, replayed_to_partition, replayed_to_offset)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (dlq_topic, dlq_partition, dlq_offset) DO UPDATE SET"
                    " replays = dead_letter_replays.replays + 1, replayed_at = now(),"
                    " replayed_to_partition = EXCLUDED.replayed_to_partition,"
                    " replayed_to_offset = EXCLUDED.replayed_to_offset",
                    (
                        item.dlq_topic,
                        item.partition,
                        item.offset,
                        item.source_topic,
                        None if item.error_type is None else item.error_type[:200],
                        item.to_partition,
                        item.to_offset,
                    ),
                )
