"""The chain watcher's cursor and window of recent blocks in PostgreSQL (migration 0002).

What they mean, and the compare-and-set on every write, is described with the store protocol in
app/adapters/tron/store.py. Its starts are in ``chain_watcher_starts`` (migration 0027), with the
platform (CHECKOUT_APP_ID) and network they belong to: a platform's history is judged from its own
rows only, so platforms sharing a database (and the development database, where every test run
has a watcher name of its own) do not make each other refuse to start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from app.adapters.postgres.pool import Connections
from app.adapters.tron.errors import CursorConflict
from app.adapters.tron.starts import (
    BlockRange,
    PlatformHistory,
    StartMode,
    WatcherStart,
    WatcherTrace,
)
from app.adapters.tron.store import StoredBlock
from app.domain.observations import TransferObserved


class PostgresWatcherStore:
    """The store on PostgreSQL (``migrations/0002_chain_watcher.sql``) over an aiopg pool.

    ``app_id`` (CHECKOUT_APP_ID) and ``network`` (TRON_NETWORK) say whose starts these are. Without
    an ``app_id`` (benchmarks, the store's own tests) no start is recorded and the history is
    always empty: such a watcher starts at the head without a cursor, as before migration 0027.
    """

    def __init__(
        self,
        pool: Connections,
        watcher_name: str = "tron-usdt",
        *,
        app_id: str | None = None,
        network: str | None = None,
    ) -> None:
        self._pool = pool
        self._name = watcher_name
        self._app_id = app_id
        self._network = network

    async def load_cursor(self) -> int | None:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT block_number FROM chain_watcher_cursor WHERE watcher_name = %s",
                (self._name,),
            )
            row = await cur.fetchone()
        return None if row is None else int(row[0])

    async def init_cursor(
        self,
        block_number: int,
        *,
        anchors: Sequence[StoredBlock] = (),
        start: WatcherStart | None = None,
    ) -> int:
        async with self._pool.acquire() as conn, conn.cursor() as cur, cur.begin():
            await cur.execute(
                "INSERT INTO chain_watcher_cursor (watcher_name, block_number) VALUES (%s, %s)"
                " ON CONFLICT (watcher_name) DO NOTHING",
                (self._name, block_number),
            )
            if cur.rowcount == 1:
                await self._insert_anchors(cur, anchors)
                if start is not None:
                    await self._insert_start(cur, start)
        cursor = await self.load_cursor()
        if cursor is None:  # pragma: no cover - the row was just inserted or already there
            raise CursorConflict(f"cursor of {self._name} vanished")
        return cursor

    async def load_window(self) -> list[StoredBlock]:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT block_number, block_id, parent_hash, block_timestamp"
                " FROM chain_watcher_blocks WHERE watcher_name = %s ORDER BY block_number",
                (self._name,),
            )
            blocks = {
                int(row[0]): StoredBlock(int(row[0]), row[1], row[2], row[3])
                for row in await cur.fetchall()
            }
            await cur.execute(
                "SELECT block_number, tx_hash, log_index, contract_address, from_address,"
                " to_address, amount FROM chain_watcher_transfers WHERE watcher_name = %s"
                " ORDER BY block_number, position",
                (self._name,),
            )
            transfers: dict[int, list[TransferObserved]] = {}
            for (
                number,
                tx_hash,
                log_index,
                contract,
                sender,
                receiver,
                amount,
            ) in await cur.fetchall():
                block = blocks[int(number)]
                transfers.setdefault(block.number, []).append(
                    TransferObserved(
                        tx_hash=tx_hash,
                        log_index=log_index,
                        block_number=block.number,
                        block_id=block.block_id,
                        block_timestamp=block.timestamp,
                        contract_address=contract,
                        from_address=sender,
                        to_address=receiver,
                        amount=int(amount),
                    )
                )
        return [
            replace(block, transfers=tuple(transfers.get(number, ())))
            for number, block in sorted(blocks.items())
        ]

    async def save_block(self, block: StoredBlock) -> None:
        async with self._pool.acquire() as conn, conn.cursor() as cur, cur.begin():
            await self._move_cursor(cur, expected=block.number - 1, to=block.number)
            await cur.execute(
                "INSERT INTO chain_watcher_blocks"
                " (watcher_name, block_number, block_id, parent_hash, block_timestamp)"
                " VALUES (%s, %s, %s, %s, %s)",
                (self._name, block.number, block.block_id, block.parent_hash, block.timestamp),
            )
            if block.transfers:
                await cur.execute(
                    "INSERT INTO chain_watcher_transfers (watcher_name, block_number, position,"
                    " tx_hash, log_index, contract_address, from_address, to_address, amount)"
                    " SELECT %s, %s, t.position, t.tx_hash, t.log_index, t.contract, t.sender,"
                    " t.receiver, t.amount FROM unnest(%s::int[], %s::text[], %s::int[],"
                    " %s::text[], %s::text[], %s::text[], %s::numeric[])"
                    " AS t(position, tx_hash, log_index, contract, sender, receiver, amount)",
                    (
                        self._name,
                        block.number,
                        list(range(len(block.transfers))),
                        [t.tx_hash for t in block.transfers],
                        [t.log_index for t in block.transfers],
                        [t.contract_address for t in block.transfers],
                        [t.from_address for t in block.transfers],
                        [t.to_address for t in block.transfers],
                        [t.amount for t in block.transfers],
                    ),
                )

    async def rewind(self, block_number: int, *, expected_cursor: int) -> None:
        async with self._pool.acquire() as conn, conn.cursor() as cur, cur.begin():
            await self._move_cursor(cur, expected=expected_cursor, to=block_number)
            await cur.execute(
                "DELETE FROM chain_watcher_blocks WHERE watcher_name = %s AND block_number > %s",
                (self._name, block_number),
            )
            # The watcher rewinds only to unwind a reorg: `checkout chain status` shows the last.
            await cur.execute(
                "INSERT INTO chain_watcher_reorgs (watcher_name, fork_block, replaced_through)"
                " VALUES (%s, %s, %s)",
                (self._name, block_number, expected_cursor),
            )

    async def reanchor(
        self,
        block_number: int,
        *,
        anchors: Sequence[StoredBlock],
        expected_cursor: int,
        start: WatcherStart,
    ) -> None:
        async with self._pool.acquire() as conn, conn.cursor() as cur, cur.begin():
            await self._move_cursor(cur, expected=expected_cursor, to=block_number)
            await cur.execute(
                "DELETE FROM chain_watcher_blocks WHERE watcher_name = %s", (self._name,)
            )
            await self._insert_anchors(cur, anchors)
            await cur.execute(
                "INSERT INTO chain_watcher_reorgs (watcher_name, fork_block, replaced_through)"
                " VALUES (%s, %s, %s)",
                (self._name, block_number, expected_cursor),
            )
            await self._insert_start(cur, start)

    async def _insert_anchors(self, cur: Any, anchors: Sequence[StoredBlock]) -> None:
        if not anchors:
            return
        await cur.execute(
            "INSERT INTO chain_watcher_blocks"
            " (watcher_name, block_number, block_id, parent_hash, block_timestamp)"
            " SELECT %s, t.number, t.block_id, t.parent_hash, t.moment"
            " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::timestamptz[])"
            " AS t(number, block_id, parent_hash, moment)",
            (
                self._name,
                [a.number for a in anchors],
                [a.block_id for a in anchors],
                [a.parent_hash for a in anchors],
                [a.timestamp for a in anchors],
            ),
        )

    async def record_start(self, start: WatcherStart) -> None:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await self._insert_start(cur, start)

    async def load_history(self) -> PlatformHistory:
        if self._app_id is None:
            return PlatformHistory(self._name, network=self._network)
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            # Each of the platform's watcher names on this network (rows of an unknown network,
            # recorded by migration 0027, count for every network) and how far it read: its
            # cursor, else its highest kept block, else where its last recorded start began.
            await cur.execute(
                "SELECT s.watcher_name, c.block_number,"
                " (SELECT max(b.block_number) FROM chain_watcher_blocks b"
                "  WHERE b.watcher_name = s.watcher_name),"
                " max(s.first_block) - 1"
                " FROM chain_watcher_starts s"
                " LEFT JOIN chain_watcher_cursor c ON c.watcher_name = s.watcher_name"
                " WHERE s.app_id = %s AND (s.network = %s OR s.network IS NULL)"
                " GROUP BY s.watcher_name, c.block_number",
                (self._app_id, self._network),
            )
            rows = await cur.fetchall()
        return PlatformHistory(
            self._name,
            app_id=self._app_id,
            network=self._network,
            traces=tuple(_trace(*row) for row in rows),
        )

    async def _insert_start(self, cur: Any, start: WatcherStart) -> None:
        if self._app_id is None:
            return
        gap = start.gap
        await cur.execute(
            "INSERT INTO chain_watcher_starts (app_id, network, watcher_name, first_block, how,"
            " previous_block, gap_from, gap_to) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                self._app_id,
                self._network,
                self._name,
                start.first_block,
                start.mode.value,
                start.previous_block,
                None if gap is None else gap.first,
                None if gap is None else gap.last,
            ),
        )

    async def prune(self, below: int) -> None:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "DELETE FROM chain_watcher_blocks WHERE watcher_name = %s AND block_number < %s",
                (self._name, below),
            )

    async def _move_cursor(self, cur: Any, *, expected: int, to: int) -> None:
        # The row lock taken here serialises two watchers; the loser sees 0 rows and rolls back.
        await cur.execute(
            "UPDATE chain_watcher_cursor SET block_number = %s, updated_at = now()"
            " WHERE watcher_name = %s AND block_number = %s",
            (to, self._name, expected),
        )
        if cur.rowcount != 1:
            raise CursorConflict(
                f"cursor of {self._name} is not at {expected}: another watcher is active"
            )


def _trace(name: str, cursor: int | None, kept: int | None, started: int) -> WatcherTrace:
    if cursor is not None:
        return WatcherTrace(name, int(cursor), "its cursor")
    if kept is not None:
        return WatcherTrace(name, int(kept), "its kept blocks; its cursor is gone")
    return WatcherTrace(name, int(started), "at least: a recorded start; its cursor is gone")


@dataclass(frozen=True)
class RecordedStart:
    """A row of ``chain_watcher_starts``, as ``checkout chain status`` shows it."""

    first_block: int
    mode: StartMode
    previous_block: int | None
    gap: BlockRange | None
    started_at: datetime


@dataclass(frozen=True)
class WatcherStatus:
    """What ``checkout chain status`` shows of a watcher's store."""

    cursor: int | None
    cursor_updated_at: datetime | None
    window_blocks: int
    reorgs: int
    last_reorg_fork: int | None
    last_reorg_through: int | None
    last_reorg_at: datetime | None
    last_start: RecordedStart | None = None
    # The latest starts that left blocks unread, newest first (at most GAPS_SHOWN).
    gaps: tuple[RecordedStart, ...] = ()


GAPS_SHOWN = 5


async def watcher_status(pool: Connections, watcher_name: str) -> WatcherStatus:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT (SELECT block_number FROM chain_watcher_cursor WHERE watcher_name = %(w)s),"
            " (SELECT updated_at FROM chain_watcher_cursor WHERE watcher_name = %(w)s),"
            " (SELECT count(*) FROM chain_watcher_blocks WHERE watcher_name = %(w)s),"
            " (SELECT count(*) FROM chain_watcher_reorgs WHERE watcher_name = %(w)s)",
            {"w": watcher_name},
        )
        cursor, updated_at, window, reorgs = await cur.fetchone()
        await cur.execute(
            "SELECT fork_block, replaced_through, detected_at FROM chain_watcher_reorgs"
            " WHERE watcher_name = %s ORDER BY reorg_id DESC LIMIT 1",
            (watcher_name,),
        )
        last = await cur.fetchone() or (None, None, None)
        starts = "SELECT first_block, how, previous_block, gap_from, gap_to, started_at"
        starts += " FROM chain_watcher_starts WHERE watcher_name = %s"
        await cur.execute(starts + " ORDER BY start_id DESC LIMIT 1", (watcher_name,))
        last_start = await cur.fetchone()
        await cur.execute(
            starts + " AND gap_from IS NOT NULL ORDER BY start_id DESC LIMIT %s",
            (watcher_name, GAPS_SHOWN),
        )
        gaps = await cur.fetchall()
    return WatcherStatus(
        cursor=None if cursor is None else int(cursor),
        cursor_updated_at=updated_at,
        window_blocks=int(window),
        reorgs=int(reorgs),
        last_reorg_fork=None if last[0] is None else int(last[0]),
        last_reorg_through=None if last[1] is None else int(last[1]),
        last_reorg_at=last[2],
        last_start=None if last_start is None else _recorded_start(*last_start),
        gaps=tuple(_recorded_start(*row) for row in gaps),
    )


def _recorded_start(
    first: int,
    how: str,
    previous: int | None,
    gap_from: int | None,
    gap_to: int | None,
    started_at: datetime,
) -> RecordedStart:
    return RecordedStart(
        first_block=int(first),
        mode=StartMode(how),
        previous_block=None if previous is None else int(previous),
        gap=None if gap_from is None or gap_to is None else BlockRange(int(gap_from), int(gap_to)),
        started_at=started_at,
    )
