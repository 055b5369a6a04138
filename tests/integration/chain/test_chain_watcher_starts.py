"""Where the watcher starts without a cursor: the real simulator, PostgreSQL and `checkout chain`.

Each test is a platform of its own (a fresh CHECKOUT_APP_ID and watcher names), in the shared
development database where many other runs' watchers have cursors and starts: the history is
judged per platform, so those never make these watchers refuse, nor these theirs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from app.adapters.postgres.chain_cursor import PostgresWatcherStore
from app.adapters.postgres.deposit_addresses import (
    DepositAddressAllocator,
    PostgresDepositAddressFilter,
)
from app.adapters.tron.errors import WatcherRefusesToStart
from app.adapters.tron.node import TronNode
from app.adapters.tron.settings import DEV_XPUB, MAINNET_USDT
from app.adapters.tron.watcher import ChainWatcher
from app.domain.observations import Observation, TransferObserved
from tests.integration.chain.conftest import DATABASE_URL, REPO_ROOT, Simulator

pytestmark = pytest.mark.integration


class Collected:
    def __init__(self) -> None:
        self.observations: list[Observation] = []

    async def __call__(self, observations: Sequence[Observation]) -> None:
        self.observations.extend(observations)

    def transfers(self) -> list[TransferObserved]:
        return [o for o in self.observations if isinstance(o, TransferObserved)]


@pytest.fixture
def app_id() -> str:
    return f"tstart{uuid.uuid4().hex[:10]}"


def watcher(
    node: TronNode,
    pg_pool: Any,
    app_id: str,
    name: str,
    publish: Collected,
    start_height: int | None = None,
) -> ChainWatcher:
    store = PostgresWatcherStore(pg_pool, f"{app_id}-{name}", app_id=app_id, network="sim")
    return ChainWatcher(
        node,
        store,
        publish,
        MAINNET_USDT,
        deposit_addresses=PostgresDepositAddressFilter(pg_pool),
        start_height=start_height,
    )


def refusing() -> float:
    return REGISTRY.get_sample_value("checkout_chain_watcher_refusing") or 0.0


async def rows(pg_pool: Any, query: str, *args: object) -> list[tuple[Any, ...]]:
    async with pg_pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(query, args)
        return list(await cur.fetchall()) if cur.description else []


async def starts(pg_pool: Any, app_id: str, name: str) -> list[tuple[Any, ...]]:
    return await rows(
        pg_pool,
        "SELECT how, first_block, previous_block, gap_from, gap_to FROM chain_watcher_starts"
        " WHERE app_id = %s AND watcher_name = %s ORDER BY start_id",
        app_id,
        f"{app_id}-{name}",
    )


async def cursor_of(pg_pool: Any, app_id: str, name: str) -> int | None:
    found = await rows(
        pg_pool,
        "SELECT block_number FROM chain_watcher_cursor WHERE watcher_name = %s",
        f"{app_id}-{name}",
    )
    return None if not found else int(found[0][0])


async def chain_cli(
    sim: Simulator, app_id: str, name: str, *args: str
) -> tuple[int, dict[str, Any] | None, str]:
    """``checkout chain <args> --json`` as an operator runs it: exit status, answer, stderr."""
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "CHECKOUT_APP_ID": app_id,
        "TRON_NETWORK": "sim",
        "TRON_NODE_URL": sim.url,
        "TRON_WATCHER_NAME": f"{app_id}-{name}",
        "TRON_WATCHER_START_HEIGHT": "",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "chain",
        *args,
        "--json",
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    answer = orjson.loads(out) if out.strip() else None
    assert process.returncode is not None
    return process.returncode, answer, err.decode()


async def test_a_brand_new_platform_starts_at_the_head_whatever_others_watched(
    sim: Simulator, node: TronNode, pg_pool: Any, app_id: str
) -> None:
    # Another platform in the same database (as every other run's is) has a cursor and starts.
    await sim.mine(4)
    other = f"tother{uuid.uuid4().hex[:10]}"
    await watcher(node, pg_pool, other, "watcher", Collected()).poll()
    await sim.mine(2)
    head = (await node.node_head()).head_number

    fresh = watcher(node, pg_pool, app_id, "watcher", Collected())
    await fresh.poll()

    assert fresh.cursor == head
    assert await starts(pg_pool, app_id, "watcher") == [("first", head, None, None, None)]
    assert refusing() == 0


async def test_a_renamed_watcher_refuses_and_an_explicit_start_resumes_where_it_stopped(
    sim: Simulator, node: TronNode, pg_pool: Any, app_id: str
) -> None:
    deposit = (await DepositAddressAllocator(pg_pool, DEV_XPUB).allocate(f"inv_{app_id}")).address
    await sim.mine(3)
    old = watcher(node, pg_pool, app_id, "old", Collected())
    await old.poll()
    read_up_to = old.cursor
    assert read_up_to is not None
    # TRON_WATCHER_NAME changes; meanwhile a customer pays.
    paid = await sim.transfer(deposit, "7", mine=True)
    await sim.mine(2)
    published = Collected()
    renamed = watcher(node, pg_pool, app_id, "new", published)

    with pytest.raises(WatcherRefusesToStart) as refused:
        await renamed.poll()

    assert f"{app_id}-old read up to block {read_up_to} [its cursor]" in str(refused.value)
    assert f"`checkout chain start --at {read_up_to + 1}`" in str(refused.value)
    assert published.observations == []
    assert await cursor_of(pg_pool, app_id, "new") is None
    assert refusing() == 1
    status, answer, _ = await chain_cli(sim, app_id, "new", "status")
    assert status == 0 and answer is not None
    assert "refuses to start at the head" in answer["watcher"]["refusing"]

    # The operator starts it where the old name stopped: no gap, so no --yes needed.
    status, answer, err = await chain_cli(sim, app_id, "new", "start", "--at", str(read_up_to + 1))
    assert status == 0, err
    assert answer == {
        "watcher": f"{app_id}-new",
        "first_block": read_up_to + 1,
        "previous_block": read_up_to,
        "gap": None,
    }
    await renamed.poll()  # the same watcher, at its next poll: no restart

    assert [t.tx_hash for t in published.transfers()] == [paid["txid"]]
    assert refusing() == 0
    assert await starts(pg_pool, app_id, "new") == [
        ("command", read_up_to + 1, read_up_to, None, None),
        ("resume", read_up_to + 1, read_up_to, None, None),
    ]
    status, answer, _ = await chain_cli(sim, app_id, "new", "status")
    assert answer is not None
    assert answer["watcher"]["refusing"] is None
    assert answer["last_start"]["how"] == "resume"
    assert answer["gaps"] == []


async def test_its_own_lost_cursor_row_makes_it_refuse(
    sim: Simulator, node: TronNode, pg_pool: Any, app_id: str
) -> None:
    await sim.mine(3)
    first = watcher(node, pg_pool, app_id, "watcher", Collected())
    await first.poll()
    await sim.mine(2)
    await first.poll()
    read_up_to = first.cursor
    await rows(
        pg_pool,
        "DELETE FROM chain_watcher_cursor WHERE watcher_name = %s",
        f"{app_id}-watcher",
    )

    with pytest.raises(WatcherRefusesToStart) as refused:
        await watcher(node, pg_pool, app_id, "watcher", Collected()).poll()
    assert f"read up to block {read_up_to} [its kept blocks" in str(refused.value)

    # Even with its kept blocks gone, the recorded start is enough (a lower bound).
    await rows(
        pg_pool,
        "DELETE FROM chain_watcher_blocks WHERE watcher_name = %s",
        f"{app_id}-watcher",
    )
    with pytest.raises(WatcherRefusesToStart) as refused:
        await watcher(node, pg_pool, app_id, "watcher", Collected()).poll()
    assert "[at least: a recorded start" in str(refused.value)
    assert await cursor_of(pg_pool, app_id, "watcher") is None


async def test_a_start_past_the_previous_cursor_records_the_gap_and_the_rescan(
    sim: Simulator, node: TronNode, pg_pool: Any, app_id: str
) -> None:
    await sim.mine(3)
    old = watcher(node, pg_pool, app_id, "old", Collected())
    await old.poll()
    read_up_to = old.cursor
    assert read_up_to is not None
    await sim.mine(6)
    head = (await node.node_head()).head_number
    gap = {"from": read_up_to + 1, "to": head - 1, "blocks": head - 1 - read_up_to}

    # Starting at the head leaves blocks unread: refused without --yes, and nothing written.
    status, _, err = await chain_cli(sim, app_id, "new", "start", "--at", "head")
    assert status == 2
    assert f"leaves blocks {read_up_to + 1}..{head - 1}" in err
    assert f"--at {read_up_to + 1}" in err
    assert await cursor_of(pg_pool, app_id, "new") is None

    status, answer, err = await chain_cli(sim, app_id, "new", "start", "--at", "head", "--yes")
    assert status == 0, err
    rescan = f"checkout chain rescan --from {read_up_to + 1} --to {head - 1}"
    assert answer is not None
    assert answer["gap"] == {**gap, "rescan": [rescan]}
    assert rescan in err
    assert await cursor_of(pg_pool, app_id, "new") == head - 1
    assert await starts(pg_pool, app_id, "new") == [
        ("command", head, read_up_to, read_up_to + 1, head - 1)
    ]
    await watcher(node, pg_pool, app_id, "new", Collected()).poll()

    status, answer, _ = await chain_cli(sim, app_id, "new", "status")
    assert answer is not None
    assert answer["last_start"]["how"] == "resume"
    [recorded] = answer["gaps"]
    assert (recorded["how"], recorded["gap"]) == ("command", {**gap, "rescan": [rescan]})


async def test_a_start_height_setting_past_the_previous_cursor_records_its_gap(
    sim: Simulator, node: TronNode, pg_pool: Any, app_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    await sim.mine(3)
    old = watcher(node, pg_pool, app_id, "old", Collected())
    await old.poll()
    read_up_to = old.cursor
    assert read_up_to is not None
    await sim.mine(6)

    await watcher(node, pg_pool, app_id, "new", Collected(), start_height=read_up_to + 4).poll()

    assert await starts(pg_pool, app_id, "new") == [
        ("setting", read_up_to + 4, read_up_to, read_up_to + 1, read_up_to + 3)
    ]
    rescan = f"`checkout chain rescan --from {read_up_to + 1} --to {read_up_to + 3}`"
    assert any(r.levelname == "ERROR" and rescan in r.getMessage() for r in caplog.records)
