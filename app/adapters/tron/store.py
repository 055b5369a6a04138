"""Where the chain watcher keeps its cursor and its window of recent blocks.

The cursor is the last block fully processed: its transfers were published and it was saved. The
window is every processed block not yet pruned — at least the cursor block and the blocks above the
node's solidified height — with each block's id, parent hash and transfers, so a reorganisation is
noticed through ``parentHash`` and the transfers of replaced blocks can be orphaned.

Every write checks the cursor it expects (compare-and-set): two watchers on one store by mistake
get ``CursorConflict`` instead of interleaving their blocks.

The store also records every start of the watcher and answers what its platform watched before
(``PlatformHistory``): how a watcher without a cursor tells the platform's first start from a lost
cursor (app/adapters/tron/starts.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from app.adapters.tron.errors import CursorConflict
from app.adapters.tron.starts import PlatformHistory, WatcherStart, WatcherTrace
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

    async def init_cursor(
        self,
        block_number: int,
        *,
        anchors: Sequence[StoredBlock] = (),
        start: WatcherStart | None = None,
    ) -> int:
        """Set the cursor if none is set yet; return the cursor now persisted.

        Atomically with it: the ``anchors`` kept (blocks up to ``block_number``, below the first
        block to read, without transfers) and the ``start`` recorded. Nothing of them is written
        when a cursor was set already: it wins.
        """

    async def record_start(self, start: WatcherStart) -> None:
        """Record a start that found its cursor (``StartMode.RESUME``)."""

    async def load_history(self) -> PlatformHistory:
        """What the platform watched before on this network, this watcher name included."""

    async def load_window(self) -> list[StoredBlock]:
        """Every kept block with its transfers, lowest first."""

    async def save_block(self, block: StoredBlock) -> None:
        """Atomically: store the block and its transfers, move the cursor from number-1 to it."""

    async def rewind(self, block_number: int, *, expected_cursor: int) -> None:
        """Atomically: drop kept blocks above ``block_number`` and set the cursor to it."""

    async def reanchor(
        self,
        block_number: int,
        *,
        anchors: Sequence[StoredBlock],
        expected_cursor: int,
        start: WatcherStart,
    ) -> None:
        """Atomically, after a reorg deeper than the window: every kept block replaced by the
        ``anchors`` (the node's blocks up to ``block_number``), the cursor moved from
        ``expected_cursor`` to ``block_number``, ``start`` (with its unverified gap) recorded."""

    async def prune(self, below: int) -> None:
        """Forget kept blocks numbered below ``below`` (they are solidified, never replaced)."""


class MemoryWatcherStore:
    """In-process store for tests and the simulator profile; same contract as PostgreSQL's.

    ``earlier`` stands for the platform's other watcher names (what PostgreSQL would find in the
    same database); ``starts`` lists the starts recorded here.
    """

    def __init__(
        self, watcher_name: str = "tron-usdt", *, earlier: Iterable[WatcherTrace] = ()
    ) -> None:
        self._name = watcher_name
        self._earlier = tuple(earlier)
        self._cursor: int | None = None
        self._blocks: dict[int, StoredBlock] = {}
        self.starts: list[WatcherStart] = []

    async def load_cursor(self) -> int | None:
        return self._cursor

    async def init_cursor(
        self,
        block_number: int,
        *,
        anchors: Sequence[StoredBlock] = (),
        start: WatcherStart | None = None,
    ) -> int:
        if self._cursor is None:
            self._cursor = block_number
            self._blocks.update((anchor.number, anchor) for anchor in anchors)
            if start is not None:
                self.starts.append(start)
        return self._cursor

    async def record_start(self, start: WatcherStart) -> None:
        self.starts.append(start)

    async def load_history(self) -> PlatformHistory:
        own = [start.first_block - 1 for start in self.starts]
        if self._cursor is not None:
            own.append(self._cursor)
        traces = self._earlier
        if own:
            evidence = "at least: a recorded start" if self._cursor is None else "its cursor"
            traces += (WatcherTrace(self._name, max(own), evidence),)
        return PlatformHistory(self._name, traces=traces)

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

    async def reanchor(
        self,
        block_number: int,
        *,
        anchors: Sequence[StoredBlock],
        expected_cursor: int,
        start: WatcherStart,
    ) -> None:
        self._expect(expected_cursor)
        self._blocks = {anchor.number: anchor for anchor in anchors}
        self._cursor = block_number
        self.starts.append(start)

    async def prune(self, below: int) -> None:
        for number in [n for n in self._blocks if n < below]:
            del self._blocks[number]

    def _expect(self, cursor: int) -> None:
        if self._cursor != cursor:
            raise CursorConflict(f"expected cursor {cursor}, found {self._cursor}")
