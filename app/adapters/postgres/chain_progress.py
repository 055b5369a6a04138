"""How far each deposits partition has processed the chain, in PostgreSQL (migrations/0028).

The payment agent notes a partition's chain head in memory (``note``: no I/O on the money path);
``flush`` — a timer on every worker, about once a second — writes the newest note of each
partition. A write that fails is kept and tried again with the next flush: only invoice expiry
waits meanwhile, the safe direction. ``chain_time`` is read by the expiry sweep.
"""

from __future__ import annotations

import logging
from datetime import datetime

from prometheus_client import Counter

from app.adapters.postgres.pool import Connections, SqlStore
from app.domain.observations import ChainHeadAdvanced

logger = logging.getLogger(__name__)

FLUSH_FAILURES = Counter(
    "checkout_chain_progress_flush_failures",
    "Writes of the deposits partitions' chain progress that failed (invoice expiry waits)",
)


class PostgresChainProgress(SqlStore):
    def __init__(self, pool: Connections, *, topic: str, partitions: int) -> None:
        super().__init__(pool)
        self._topic = topic
        self._partitions = partitions
        self._notes: dict[int, ChainHeadAdvanced] = {}

    def note(self, partition: int, head: ChainHeadAdvanced) -> None:
        if head.block_timestamp is not None:  # heads of an older watcher: nothing to say
            self._notes[partition] = head

    async def flush(self) -> int:
        """Write the notes taken since the last flush; how many partitions were written."""
        if not self._notes:
            return 0
        notes, self._notes = self._notes, {}
        rows = [
            (self._topic, partition, head.head_number, head.head_block_id, head.block_timestamp)
            for partition, head in sorted(notes.items())
        ]
        try:
            async with self._pool.acquire() as conn, conn.cursor() as cur:
                for row in rows:
                    await cur.execute(
                        "INSERT INTO chain_progress (topic, partition, head_number,"
                        " head_block_id, block_timestamp) VALUES (%s, %s, %s, %s, %s)"
                        " ON CONFLICT (topic, partition) DO UPDATE SET"
                        " head_number = EXCLUDED.head_number,"
                        " head_block_id = EXCLUDED.head_block_id,"
                        " block_timestamp = EXCLUDED.block_timestamp, updated_at = now()",
                        row,
                    )
        except Exception:
            # Keep what was not written unless a newer note came meanwhile; say it, go on.
            for partition, head in notes.items():
                self._notes.setdefault(partition, head)
            FLUSH_FAILURES.inc()
            logger.warning("cannot record the chain progress; invoice expiry waits", exc_info=True)
            return 0
        return len(rows)

    async def chain_time(self) -> datetime | None:
        row = await self._fetchone(
            "SELECT count(*), min(block_timestamp) FROM chain_progress"
            " WHERE topic = %s AND partition < %s",
            (self._topic, self._partitions),
        )
        if row is None or row[0] < self._partitions:
            return None
        stamp: datetime = row[1]
        return stamp
