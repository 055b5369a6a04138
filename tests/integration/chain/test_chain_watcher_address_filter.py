"""Only transfers to deposit addresses allocated in PostgreSQL leave the watcher (real simulator).

The simulator's chain carries payments to our invoices and transfers between strangers, as
mainnet does; the watcher must publish and keep the first only.
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
from app.adapters.tron.deposit_addresses import MAX_ADDRESS_INDEX, derive_deposit_address
from app.adapters.tron.node import TronNode
from app.adapters.tron.settings import DEV_XPUB, MAINNET_USDT
from app.adapters.tron.watcher import ChainWatcher
from app.domain.observations import Observation, TransferObserved, TransferOrphaned
from tests.integration.chain.conftest import Simulator

pytestmark = pytest.mark.integration

WATCHER_NAME = "tron-usdt-filter"
# Somebody else's address, and one of our xpub's that no invoice was ever given.
STRANGER = "TLyqzVGLV1srkB7dToTAEqgDSfPtXRJZYH"
NEVER_ALLOCATED = derive_deposit_address(DEV_XPUB, MAX_ADDRESS_INDEX)


class Collected:
    def __init__(self) -> None:
        self.observations: list[Observation] = []

    async def __call__(self, observations: Sequence[Observation]) -> None:
        self.observations.extend(observations)

    def transfers(self) -> list[TransferObserved]:
        return [o for o in self.observations if isinstance(o, TransferObserved)]

    def orphans(self) -> list[TransferOrphaned]:
        return [o for o in self.observations if isinstance(o, TransferOrphaned)]


def make_watcher(node: TronNode, pg_pool: Any, publish: Collected) -> ChainWatcher:
    return ChainWatcher(
        node,
        PostgresWatcherStore(pg_pool, watcher_name=WATCHER_NAME),
        publish,
        MAINNET_USDT,
        deposit_addresses=PostgresDepositAddressFilter(pg_pool),
        start_height=1,
    )


async def kept_recipients(pg_pool: Any) -> list[str]:
    async with pg_pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT to_address FROM chain_watcher_transfers WHERE watcher_name = %s"
            " ORDER BY block_number, position",
            (WATCHER_NAME,),
        )
        return [row[0] for row in await cur.fetchall()]


async def test_the_filter_names_the_allocated_addresses_only(pg_pool: Any) -> None:
    allocator = DepositAddressAllocator(pg_pool, DEV_XPUB)
    deposit_addresses = PostgresDepositAddressFilter(pg_pool)
    first = (await allocator.allocate("inv_filter_1")).address

    assert await deposit_addresses.ours([first, first, STRANGER, NEVER_ALLOCATED]) == {first}
    assert await deposit_addresses.ours([]) == set()

    # Asked again right after an allocation: no earlier "not ours" answer sticks.
    second = (await allocator.allocate("inv_filter_2")).address
    assert await deposit_addresses.ours([first, second, STRANGER]) == {first, second}


async def test_a_transfer_to_a_foreign_address_is_not_published_one_to_an_invoice_is(
    sim: Simulator, node: TronNode, pg_pool: Any
) -> None:
    deposit = (await DepositAddressAllocator(pg_pool, DEV_XPUB).allocate("inv_paid")).address
    collected = Collected()
    watcher = make_watcher(node, pg_pool, collected)
    batch = await sim.post(
        "/sim/transfers",
        {
            "transfers": [
                {"to": STRANGER, "amount": "1000"},
                {"to": deposit, "amount": "9.99"},
                {"to": NEVER_ALLOCATED, "amount": "2"},
            ],
            "mine": True,
        },
    )
    _, paid, _ = batch["txids"]

    await watcher.poll()

    assert [(t.tx_hash, t.to_address, t.amount) for t in collected.transfers()] == [
        (paid, deposit, 9_990_000)
    ]
    assert await kept_recipients(pg_pool) == [deposit]

    # A reorg takes back the published payment only.
    await sim.reorg(1)
    await watcher.poll()
    assert [(o.tx_hash, o.to_address) for o in collected.orphans()] == [(paid, deposit)]


async def test_an_invoice_created_while_the_watcher_runs_is_paid_from_its_next_block(
    sim: Simulator, node: TronNode, pg_pool: Any
) -> None:
    collected = Collected()
    watcher = make_watcher(node, pg_pool, collected)
    await sim.transfer(STRANGER, "5", mine=True)
    await watcher.poll()
    assert collected.transfers() == []

    deposit = (await DepositAddressAllocator(pg_pool, DEV_XPUB).allocate("inv_late")).address
    paid = await sim.transfer(deposit, "42", mine=True)
    await watcher.poll()

    assert [(t.tx_hash, t.amount) for t in collected.transfers()] == [(paid["txid"], 42_000_000)]
