"""The contract every WatcherStore implementation keeps (run against memory and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.adapters.tron.errors import CursorConflict
from app.adapters.tron.starts import BlockRange, StartMode, WatcherStart
from app.adapters.tron.store import StoredBlock, WatcherStore
from app.domain.observations import TransferObserved

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
ALICE = "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"
BOB = "TSeJkUh4Qv67VNFwY8LaAxERygNdy6NQZK"


def block_id(number: int, fork: int = 0) -> str:
    return number.to_bytes(8, "big").hex() + f"{fork:048x}"


def make_block(number: int, transfers: int = 0, *, fork: int = 0) -> StoredBlock:
    ident = block_id(number, fork)
    timestamp = datetime.fromtimestamp(1_700_000_000 + 3 * number, tz=UTC)
    return StoredBlock(
        number=number,
        block_id=ident,
        parent_hash=block_id(number - 1, fork) if number else "00" * 32,
        timestamp=timestamp,
        transfers=tuple(
            TransferObserved(
                tx_hash=f"{number:032x}{i:032x}",
                log_index=i % 3,
                block_number=number,
                block_id=ident,
                block_timestamp=timestamp,
                contract_address=USDT,
                from_address=ALICE,
                to_address=BOB,
                amount=(2**256 - 1) if i == 0 else i * 1_000_000,
            )
            for i in range(transfers)
        ),
    )


class WatcherStoreContract:
    """Subclass with a ``store`` fixture returning a fresh, empty store."""

    async def test_a_fresh_store_has_no_cursor_and_no_blocks(self, store: WatcherStore) -> None:
        assert await store.load_cursor() is None
        assert await store.load_window() == []
        assert not (await store.load_history()).watched_before

    async def test_a_first_cursor_keeps_its_anchor_and_records_its_start(
        self, store: WatcherStore
    ) -> None:
        anchors = [make_block(n) for n in (7, 8, 9)]
        start = WatcherStart(10, StartMode.COMMAND, previous_block=5, gap=BlockRange(6, 9))

        assert await store.init_cursor(9, anchors=anchors, start=start) == 9
        await store.save_block(make_block(10, transfers=1))

        assert await store.load_window() == [*anchors, make_block(10, transfers=1)]
        history = await store.load_history()
        assert [(t.watcher_name, t.last_block) for t in history.traces] == [
            (history.watcher_name, 10)
        ]

    async def test_a_second_first_cursor_writes_nothing_of_its_own(
        self, store: WatcherStore
    ) -> None:
        await store.init_cursor(9, start=WatcherStart(10, StartMode.FIRST))

        second = WatcherStart(51, StartMode.FIRST)
        assert await store.init_cursor(50, anchors=[make_block(50)], start=second) == 9

        assert await store.load_window() == []
        await store.record_start(WatcherStart(10, StartMode.RESUME, previous_block=9))
        history = await store.load_history()
        assert [(t.watcher_name, t.last_block) for t in history.traces] == [
            (history.watcher_name, 9)
        ]

    async def test_the_first_cursor_set_wins(self, store: WatcherStore) -> None:
        assert await store.init_cursor(99) == 99
        assert await store.init_cursor(5) == 99
        assert await store.load_cursor() == 99

    async def test_a_saved_block_comes_back_with_its_transfers_in_order(
        self, store: WatcherStore
    ) -> None:
        await store.init_cursor(9)
        blocks = [make_block(10, transfers=3), make_block(11), make_block(12, transfers=2)]
        for block in blocks:
            await store.save_block(block)

        assert await store.load_cursor() == 12
        assert await store.load_window() == blocks

    async def test_saving_out_of_order_conflicts_and_stores_nothing(
        self, store: WatcherStore
    ) -> None:
        await store.init_cursor(9)
        await store.save_block(make_block(10, transfers=1))

        with pytest.raises(CursorConflict):
            await store.save_block(make_block(12, transfers=1))
        with pytest.raises(CursorConflict):
            await store.save_block(make_block(10, transfers=1, fork=1))

        assert await store.load_cursor() == 10
        assert [b.block_id for b in await store.load_window()] == [block_id(10)]

    async def test_rewind_forgets_the_replaced_blocks_and_their_transfers(
        self, store: WatcherStore
    ) -> None:
        await store.init_cursor(9)
        for number in range(10, 15):
            await store.save_block(make_block(number, transfers=2))

        await store.rewind(11, expected_cursor=14)
        assert await store.load_cursor() == 11
        assert [b.number for b in await store.load_window()] == [10, 11]

        replacement = make_block(12, transfers=2, fork=1)
        replacement = StoredBlock(
            replacement.number,
            replacement.block_id,
            block_id(11),
            replacement.timestamp,
            replacement.transfers,
        )
        await store.save_block(replacement)
        assert (await store.load_window())[-1] == replacement

    async def test_rewind_from_an_unexpected_cursor_conflicts_and_changes_nothing(
        self, store: WatcherStore
    ) -> None:
        await store.init_cursor(9)
        for number in range(10, 13):
            await store.save_block(make_block(number))

        with pytest.raises(CursorConflict):
            await store.rewind(10, expected_cursor=13)

        assert await store.load_cursor() == 12
        assert [b.number for b in await store.load_window()] == [10, 11, 12]

    async def test_reanchor_replaces_every_kept_block_and_records_the_unverified_gap(
        self, store: WatcherStore
    ) -> None:
        await store.init_cursor(9)
        for number in range(10, 15):
            await store.save_block(make_block(number, transfers=2))
        anchors = [make_block(n, fork=1) for n in (8, 9)]
        start = WatcherStart(10, StartMode.REORG, previous_block=14, gap=BlockRange(8, 9))

        with pytest.raises(CursorConflict):
            await store.reanchor(9, anchors=anchors, expected_cursor=13, start=start)
        assert await store.load_cursor() == 14

        await store.reanchor(9, anchors=anchors, expected_cursor=14, start=start)
        assert await store.load_cursor() == 9
        assert await store.load_window() == anchors  # the replaced blocks and transfers gone
        history = await store.load_history()
        assert history.watched_before
        await store.save_block(make_block(10, fork=1))
        assert await store.load_cursor() == 10

    async def test_prune_forgets_blocks_below_and_keeps_the_cursor(
        self, store: WatcherStore
    ) -> None:
        await store.init_cursor(-1)
        for number in range(0, 6):
            await store.save_block(make_block(number, transfers=1))

        await store.prune(4)

        assert await store.load_cursor() == 5
        assert [b.number for b in await store.load_window()] == [4, 5]
