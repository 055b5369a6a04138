"""Where the chain watcher keeps its cursor and its window of recent blocks.

The cursor is the last block fully processed: its transfers were published and it was saved. The
window is every processed block not yet pruned — at least the cursor block and the blocks above the
node's solidified height — with each block's id, parent hash and transfers, so a reorganisation is
noticed through ``parentHash`` and the transfers of replaced blocks can be orphaned.

Every write checks the cursor it expects (compare-and-set): two watchers on one store by mistake
get ``CursorConflict`` instead of interleaving their blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from app.adapters.tron.errors import CursorConflict
from app.domain.observations import TransferObserved


@dataclass(frozen=True)
class StoredBlock:
    number: int
    block_id: str
    parent_hash: str
    timestamp: datetime
    transfers: tuple[TransferObserved, ...] = ()


class WatcherStore(Protocol):
    async def load_cursor(self) -> int | None:
        """The last processed block number, None before the first start."""

    async def init_cursor(self, block_number: int) -> int:
        """Set the cursor if none is set yet; return the cursor now persisted."""

    async def load_window(self) -> list[StoredBlock]:
        """Every kept block with its transfers, lowest first."""

    async def save_block(self, block: StoredBlock) -> None:
        """Atomically: store the block and its transfers, move the cursor from number-1 to it."""

    async def rewind(self, block_number: int, *, expected_cursor: int) -> None:
        """Atomically: drop kept blocks above ``block_number`` and set the cursor to it."""

    async def prune(self, below: int) -> None:
        """Forget kept blocks numbered below ``below`` (they are solidified, never replaced)."""


class MemoryWatcherStore:
    """In-process store for tests and the simulator profile; same contract as PostgreSQL's."""

    def __init__(self) -> None:
        self._cursor: int | None = None
        self._blocks: dict[int, StoredBlock] = {}

    async def load_cursor(self) -> int | None:
        return self._cursor

    async def init_cursor(self, block_number: int) -> int:
        if self._cursor is None:
            self._cursor = block_number
        return self._cursor

    async def load_window(self) -> list[StoredBlock]:
        return [self._blocks[number] for number in sorted(self._blocks)]

    async def save_block(self, block: StoredBlock) -> None:
        self._expect(block.number - 1)
        if block.number in self._blocks:
            raise CursorConflict(f"block {block.number} is already stored")
        self._blocks[block.number] = block
        self._cursor = block.number

    async def rewind(self, block_number: int, *, expected_cursor: int) -> None:
        self._expect(expected_cursor)
        for number in [n for n in self._blocks if n > block_number]:
            del self._blocks[number]
        self._cursor = block_number

    async def prune(self, below: int) -> None:
        for number in [n for n in self._blocks if n < below]:
            del self._blocks[number]

    def _expect(self, cursor: int) -> None:
        if self._cursor != cursor:
            raise CursorConflict(f"expected cursor {cursor}, found {self._cursor}")


class PostgresWatcherStore:
    """The store on PostgreSQL (``migrations/0002_chain_watcher.sql``) over an aiopg pool."""

    def __init__(self, pool: Any, watcher_name: str = "tron-usdt") -> None:
        self._pool = pool
        self._name = watcher_name

    async def load_cursor(self) -> int | None:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT block_number FROM chain_watcher_cursor WHERE watcher_name = %s",
                (self._name,),
            )
            row = await cur.fetchone()
        return None if row is None else int(row[0])

    async def init_cursor(self, block_number: int) -> int:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "INSERT INTO chain_watcher_cursor (watcher_name, block_number) VALUES (%s, %s)"
                " ON CONFLICT (watcher_name) DO NOTHING",
                (self._name, block_number),
            )
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
