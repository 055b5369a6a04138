"""The chain watcher against the real simulator process over HTTP, with the PostgreSQL store.

Payments go to deposit addresses allocated in PostgreSQL the way the API does it; transfers to
anybody else are covered in test_chain_watcher_address_filter.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from app.adapters.postgres.chain_cursor import PostgresWatcherStore
from app.adapters.postgres.deposit_addresses import (
    DepositAddressAllocator,
    PostgresDepositAddressFilter,
)
from app.adapters.tron.node import TronNode
from app.adapters.tron.settings import DEV_XPUB, MAINNET_USDT
from app.adapters.tron.watcher import ChainWatcher
from app.domain.observations import (
    ChainHeadAdvanced,
    Observation,
    TransferObserved,
    TransferOrphaned,
)
from tests.integration.chain.conftest import Simulator

pytestmark = pytest.mark.integration


async def deposit_address(pg_pool: Any, invoice_id: str) -> str:
    return (await DepositAddressAllocator(pg_pool, DEV_XPUB).allocate(invoice_id)).address


class Collected:
    def __init__(self, *, fail_on_call: int | None = None) -> None:
        self.observations: list[Observation] = []
        self._fail_on_call = fail_on_call
        self._calls = 0

    async def __call__(self, observations: Sequence[Observation]) -> None:
        self._calls += 1
        if self._calls == self._fail_on_call:
            raise ConnectionError("worker killed while publishing")
        self.observations.extend(observations)

    def transfers(self) -> list[TransferObserved]:
        return [o for o in self.observations if isinstance(o, TransferObserved)]

    def orphans(self) -> list[TransferOrphaned]:
        return [o for o in self.observations if isinstance(o, TransferOrphaned)]


def make_watcher(node: TronNode, pg_pool: Any, publish: Collected, **options: Any) -> ChainWatcher:
    store = PostgresWatcherStore(pg_pool, watcher_name="tron-usdt-sim")
    return ChainWatcher(
        node,
        store,
        publish,
        MAINNET_USDT,
        deposit_addresses=PostgresDepositAddressFilter(pg_pool),
        start_height=1,
        **options,
    )


async def test_a_payment_to_a_deposit_address_is_observed_exactly_once(
    sim: Simulator, node: TronNode, pg_pool: Any
) -> None:
    deposit = await deposit_address(pg_pool, "inv_once")
    collected = Collected()
    watcher = make_watcher(node, pg_pool, collected)
    await watcher.check_token()
    await sim.mine(2)
    paid = await sim.transfer(deposit, "9.99", mine=True)
    await sim.mine(3)

    await watcher.poll()
    await sim.mine(1)
    await watcher.poll()

    [observed] = collected.transfers()
    assert observed.tx_hash == paid["txid"]
    assert observed.log_index == 0
    assert observed.amount == 9_990_000
    assert (observed.block_number, observed.block_id) == (
        paid["block"]["number"],
        paid["block"]["id"],
    )
    assert (observed.from_address, observed.to_address) == (paid["from"], deposit)
    assert observed.contract_address == MAINNET_USDT
    heads = [o for o in collected.observations if isinstance(o, ChainHeadAdvanced)]
    assert heads[-1].head_number == paid["block"]["number"] + 4


async def test_a_failed_transfer_produces_nothing(
    sim: Simulator, node: TronNode, pg_pool: Any
) -> None:
    deposit_0 = await deposit_address(pg_pool, "inv_failed")
    deposit_1 = await deposit_address(pg_pool, "inv_good")
    collected = Collected()
    watcher = make_watcher(node, pg_pool, collected)
    failed = await sim.transfer(deposit_0, "5", fail=True)
    good = await sim.transfer(deposit_1, "6", mine=True)
    assert failed["txid"] in good["block"]["transactions"]

    await watcher.poll()

    assert [(t.tx_hash, t.to_address, t.amount) for t in collected.transfers()] == [
        (good["txid"], deposit_1, 6_000_000)
    ]


async def test_a_reorg_of_depth_3_orphans_the_payment_and_it_is_observed_again(
    sim: Simulator, node: TronNode, pg_pool: Any
) -> None:
    deposit = await deposit_address(pg_pool, "inv_reorg")
    collected = Collected()
    watcher = make_watcher(node, pg_pool, collected)
    await sim.mine(3)
    paid = await sim.transfer(deposit, "100", mine=True)
    await sim.mine(2)
    await watcher.poll()
    assert [t.tx_hash for t in collected.transfers()] == [paid["txid"]]

    # The 3 blocks from the payment's block up are replaced; the payment lands one block later.
    reorg = await sim.reorg(3, delay={paid["txid"]: 1})
    await watcher.poll()

    [orphan] = collected.orphans()
    assert (orphan.tx_hash, orphan.log_index) == (paid["txid"], 0)
    assert (orphan.block_number, orphan.block_id) == (paid["block"]["number"], paid["block"]["id"])
    assert orphan.to_address == deposit
    first, again = collected.transfers()
    assert (again.tx_hash, again.log_index, again.amount) == (paid["txid"], 0, 100_000_000)
    assert again.block_number == paid["block"]["number"] + 1
    assert again.block_id in reorg["new_blocks"]
    assert first.block_id in reorg["old_blocks"]
    assert watcher.cursor == reorg["head"]


async def test_a_restarted_watcher_neither_skips_nor_repeats_a_transfer(
    sim: Simulator, node: TronNode, pg_pool: Any
) -> None:
    deposits = [await deposit_address(pg_pool, f"inv_restart_{i}") for i in range(4)]
    await sim.mine(1)
    batch = await sim.post(
        "/sim/transfers",
        {
            "transfers": [{"to": deposits[i % 4], "amount": f"{i + 1}.5"} for i in range(30)],
            "mine": True,
            "per_block": 5,
        },
    )
    expected = [(txid, 0) for txid in batch["txids"]]
    delivered = Collected()
    crashing = Collected(fail_on_call=4)  # dies publishing the 4th block's transfers

    with pytest.raises(ConnectionError):
        await make_watcher(node, pg_pool, crashing, fetch_concurrency=3).poll()
    delivered.observations.extend(crashing.observations)
    await sim.mine(2)
    await make_watcher(node, pg_pool, delivered).poll()  # a new process: state from PostgreSQL

    assert [(t.tx_hash, t.log_index) for t in delivered.transfers()] == expected
