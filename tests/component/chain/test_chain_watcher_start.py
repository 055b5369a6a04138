"""Where the watcher starts without a cursor: the fake node over HTTP, the in-memory store.

The PostgreSQL side (other watcher names, a lost cursor row, `checkout chain start`) is in
tests/integration/chain/test_chain_watcher_starts.py.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg2
import pytest
from prometheus_client import REGISTRY

from agents.chain_watcher import ChainWatching
from app.adapters.tron.address_filter import MemoryDepositAddressFilter
from app.adapters.tron.errors import WatcherRefusesToStart
from app.adapters.tron.node import TronNode
from app.adapters.tron.starts import BlockRange, StartMode, WatcherStart, WatcherTrace
from app.adapters.tron.store import MemoryWatcherStore, StoredBlock
from app.adapters.tron.watcher import ChainWatcher
from app.domain.observations import TransferObserved
from tests.component.chain.chain_fake_node import USDT, FakeChain, Published, usdt_transfer

pytestmark = pytest.mark.component

ALICE = "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"
BOB = "TSeJkUh4Qv67VNFwY8LaAxERygNdy6NQZK"
# The platform's watcher of before the rename read up to block 3.
OLD_NAME = WatcherTrace("tron-usdt-old", 3, "its cursor")


def watcher(
    node: TronNode, store: MemoryWatcherStore, published: Published, start_height: int | None
) -> ChainWatcher:
    return ChainWatcher(
        node,
        store,
        published,
        USDT,
        deposit_addresses=MemoryDepositAddressFilter([BOB]),
        start_height=start_height,
    )


def refusing() -> float:
    return REGISTRY.get_sample_value("checkout_chain_watcher_refusing") or 0.0


def failures(error: str) -> float:
    sample = REGISTRY.get_sample_value(
        "checkout_chain_watcher_poll_failures_total", {"error": error}
    )
    return sample or 0.0


async def test_a_renamed_watcher_refuses_reads_nothing_and_logs_what_to_do(
    fake_chain: FakeChain, node: TronNode, published: Published, caplog: pytest.LogCaptureFixture
) -> None:
    fake_chain.mine_empty(3)
    fake_chain.mine(usdt_transfer(ALICE, BOB, 5_000_000))  # block 4: after the old cursor
    store = MemoryWatcherStore("tron-usdt-new", earlier=[OLD_NAME])
    chain_watcher = watcher(node, store, published, start_height=None)

    with caplog.at_level(logging.ERROR), pytest.raises(WatcherRefusesToStart) as refused:
        await chain_watcher.poll()

    assert "`checkout chain start --at 4`" in str(refused.value)
    assert fake_chain.requests == []  # not even the node's head
    assert published.calls == []
    assert await store.load_cursor() is None
    assert store.starts == []
    assert refusing() == 1
    [logged] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "tron-usdt-new refuses to start at the head" in logged.getMessage()

    with caplog.at_level(logging.ERROR), pytest.raises(WatcherRefusesToStart):
        await chain_watcher.poll()
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1  # once a minute


async def test_once_told_where_to_start_it_reads_on_from_there_without_a_restart(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    fake_chain.mine_empty(3)
    paid = fake_chain.mine(usdt_transfer(ALICE, BOB, 5_000_000))
    store = MemoryWatcherStore("tron-usdt-new", earlier=[OLD_NAME])
    chain_watcher = watcher(node, store, published, start_height=None)
    with pytest.raises(WatcherRefusesToStart):
        await chain_watcher.poll()

    # What `checkout chain start --at 4` does, with a watcher of its own.
    told = WatcherStart(4, StartMode.COMMAND, previous_block=3)
    assert await watcher(node, store, Published(), None).start_at(told) == 3
    await chain_watcher.poll()

    assert [t.block_number for t in published.of(TransferObserved)] == [paid.number]
    assert store.starts == [told, WatcherStart(4, StartMode.RESUME, previous_block=3)]
    assert refusing() == 0


async def test_a_start_height_setting_is_obeyed_and_its_gap_logged_with_the_rescan(
    fake_chain: FakeChain, node: TronNode, published: Published, caplog: pytest.LogCaptureFixture
) -> None:
    fake_chain.mine_empty(9)
    store = MemoryWatcherStore("tron-usdt-new", earlier=[OLD_NAME])

    with caplog.at_level(logging.ERROR):
        await watcher(node, store, published, start_height=7).poll()

    assert store.starts == [WatcherStart(7, StartMode.SETTING, 3, BlockRange(4, 6))]
    [logged] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "blocks 4..6 (3) were never read" in logged
    assert "`checkout chain rescan --from 4 --to 6`" in logged


async def test_a_brand_new_platform_starts_at_the_head_and_later_resumes(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    fake_chain.mine_empty(5)
    store = MemoryWatcherStore("tron-usdt-sim")

    await watcher(node, store, published, start_height=None).poll()
    fake_chain.mine_empty(2)
    await watcher(node, store, published, start_height=None).poll()

    assert store.starts == [
        WatcherStart(5, StartMode.FIRST),
        WatcherStart(6, StartMode.RESUME, previous_block=5),
    ]
    assert await store.load_cursor() == 7


async def test_run_waits_out_a_refusal_instead_of_stopping(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    store = MemoryWatcherStore("tron-usdt-new", earlier=[OLD_NAME])
    stop = asyncio.Event()
    running = asyncio.create_task(
        watcher(node, store, published, start_height=None).run(poll_interval=0.01, stop=stop)
    )
    await asyncio.sleep(0.2)

    assert not running.done()
    stop.set()
    await asyncio.wait_for(running, timeout=5)
    assert await store.load_cursor() is None


async def test_the_leaders_polls_report_the_refusal_on_the_operators_readyz(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    fake_chain.mine_empty(5)
    store = MemoryWatcherStore("tron-usdt-new", earlier=[OLD_NAME])
    watching = ChainWatching(lambda: watcher(node, store, published, None), poll_interval=0.1)
    before = failures("WatcherRefusesToStart")

    await watching.poll()  # the worker stays up: nothing raised

    readiness = watching.readiness()
    assert readiness["status"] == "down"
    assert "checkout chain start --at 4" in str(readiness["error"])
    assert failures("WatcherRefusesToStart") == before + 1

    await watcher(node, store, Published(), None).start_at(
        WatcherStart(4, StartMode.COMMAND, previous_block=3)
    )
    await watching.poll()
    assert watching.readiness() == {"status": "up"}
    assert await store.load_cursor() == 5


class StoreDown(MemoryWatcherStore):
    """The cursor's store (PostgreSQL) unreachable while ``down``."""

    down = False

    async def save_block(self, block: StoredBlock) -> None:
        if self.down:
            raise psycopg2.OperationalError("connection to server at 127.0.0.1 refused")
        await super().save_block(block)


async def test_polls_during_a_database_outage_log_one_line_not_a_traceback_each(
    fake_chain: FakeChain, node: TronNode, published: Published, caplog: pytest.LogCaptureFixture
) -> None:
    fake_chain.mine_empty(3)
    store = StoreDown("tron-usdt")
    watching = ChainWatching(lambda: watcher(node, store, published, 0), poll_interval=0.1)
    await watching.poll()
    before = failures("OperationalError")
    store.down = True
    fake_chain.mine_empty(1)  # block 4 cannot be stored

    with caplog.at_level(logging.INFO, logger="agents.chain_watcher"):
        for _ in range(5):
            await watching.poll()  # nothing raised: the worker stays up
        store.down = False
        await watching.poll()

    assert failures("OperationalError") == before + 5  # each failed poll is counted
    lines = [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records]
    assert [level for level, _, _ in lines] == ["WARNING", "INFO"], lines
    assert "OperationalError" in lines[0][1] and lines[0][2] is None
    assert "polls succeed again" in lines[1][1]
    assert await store.load_cursor() == 4  # and it read on
