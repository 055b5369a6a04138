"""The chain watcher publishes only transfers to our deposit addresses (a fake filter, in process).

The node is the component tier's FakeChain read directly, without HTTP, and the store is the
in-memory one: what is under test is the watcher's use of its ``DepositAddressFilter``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import pytest
from prometheus_client import REGISTRY

from app.adapters.tron.address_filter import MemoryDepositAddressFilter
from app.adapters.tron.logs import block_time
from app.adapters.tron.node import BlockHeader, NodeHead
from app.adapters.tron.store import MemoryWatcherStore, StoredBlock
from app.adapters.tron.watcher import ChainWatcher
from app.domain.observations import ChainHeadAdvanced, TransferObserved, TransferOrphaned
from tests.component.chain.chain_fake_node import (
    USDT,
    FakeChain,
    FakeTx,
    Published,
    new_txid,
    transfer_log,
    usdt_transfer,
)

pytestmark = pytest.mark.unit

PAYER = "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"
OURS = "TSeJkUh4Qv67VNFwY8LaAxERygNdy6NQZK"
ALSO_OURS = "TYJPRrdB5APNeRs4R7fYZSwW3TcrTKw2gx"
STRANGER = "TLyqzVGLV1srkB7dToTAEqgDSfPtXRJZYH"
ANOTHER_STRANGER = "TEkxiTehnzSmSe2XqrBj4w32RUN966rdz8"


class InProcessNode:
    """The watcher's ChainNode over a FakeChain, without the HTTP round trip."""

    def __init__(self, chain: FakeChain) -> None:
        self._chain = chain

    async def node_head(self) -> NodeHead:
        head = self._chain.head
        solid = self._chain.blocks[max(0, head.number - self._chain.solid_lag)]
        return NodeHead(head.number, head.block_id, solid.number)

    async def block_header(self, number: int) -> BlockHeader:
        block = self._chain.blocks[number]
        return BlockHeader(
            block.number,
            block.block_id,
            block.parent_hash,
            block.timestamp,
            tuple(tx.txid for tx in block.txs),
        )

    async def transaction_infos(self, number: int) -> list[Mapping[str, Any]]:
        block = self._chain.blocks[number]
        return [tx.receipt(number, block.timestamp) for tx in block.txs]

    async def token_decimals(self, contract: str) -> int:
        return self._chain.decimals


class RecordingFilter(MemoryDepositAddressFilter):
    """Our addresses in memory; remembers every question and can be told to fail."""

    def __init__(self, *addresses: str) -> None:
        super().__init__(addresses)
        self.questions: list[set[str]] = []
        self.fail = False

    async def ours(self, addresses: Collection[str]) -> set[str]:
        if self.fail:
            raise ConnectionError("PostgreSQL is unavailable")
        self.questions.append(set(addresses))
        return await super().ours(addresses)


def make_watcher(
    chain: FakeChain,
    deposit_addresses: RecordingFilter,
    published: Published,
    store: MemoryWatcherStore | None = None,
) -> ChainWatcher:
    return ChainWatcher(
        InProcessNode(chain),
        store or MemoryWatcherStore(),
        published,
        USDT,
        deposit_addresses=deposit_addresses,
        start_height=1,
    )


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_only_transfers_to_our_deposit_addresses_are_published_and_kept() -> None:
    chain, published, store = FakeChain(), Published(), MemoryWatcherStore()
    to_us = usdt_transfer(PAYER, OURS, 9_990_000)
    batch = FakeTx(
        new_txid(),
        [transfer_log(PAYER, STRANGER, 1), transfer_log(PAYER, ALSO_OURS, 2)],
    )
    chain.mine(usdt_transfer(PAYER, STRANGER, 5), to_us, batch)
    chain.mine(usdt_transfer(PAYER, ANOTHER_STRANGER, 6))
    seen_before = sample("checkout_chain_transfers_seen_total")
    observed_before = sample("checkout_chain_transfers_observed_total")

    await make_watcher(chain, RecordingFilter(OURS, ALSO_OURS), published, store).poll()

    assert [
        (t.tx_hash, t.log_index, t.to_address, t.amount) for t in published.of(TransferObserved)
    ] == [
        (to_us.txid, 0, OURS, 9_990_000),
        (batch.txid, 1, ALSO_OURS, 2),
    ]
    kept = {block.number: block for block in await store.load_window()}
    assert [t.to_address for t in kept[1].transfers] == [OURS, ALSO_OURS]
    assert kept[2].transfers == ()
    assert sample("checkout_chain_transfers_seen_total") == seen_before + 5
    assert sample("checkout_chain_transfers_observed_total") == observed_before + 2


async def test_one_question_per_block_with_transfers_naming_its_recipients() -> None:
    chain, published = FakeChain(), Published()
    deposit_addresses = RecordingFilter(OURS)
    chain.mine(usdt_transfer(PAYER, OURS, 1), usdt_transfer(PAYER, OURS, 2))
    chain.mine_empty(1)
    chain.mine(usdt_transfer(PAYER, STRANGER, 3), usdt_transfer(STRANGER, ANOTHER_STRANGER, 4))

    await make_watcher(chain, deposit_addresses, published).poll()

    assert deposit_addresses.questions == [{OURS}, {STRANGER, ANOTHER_STRANGER}]


async def test_heads_are_published_when_no_transfer_is_ours() -> None:
    chain, published = FakeChain(), Published()
    chain.mine(usdt_transfer(PAYER, STRANGER, 1))
    chain.mine_empty(2)

    await make_watcher(chain, RecordingFilter(OURS), published).poll()

    assert published.of(TransferObserved) == []
    assert [h.head_number for h in published.of(ChainHeadAdvanced)] == [3]


async def test_an_address_allocated_after_a_block_counts_from_the_next_block() -> None:
    chain, published = FakeChain(), Published()
    deposit_addresses = RecordingFilter(OURS)
    chain_watcher = make_watcher(chain, deposit_addresses, published)
    early = usdt_transfer(PAYER, ALSO_OURS, 1)  # before the address was ours: not a payment
    chain.mine(early)
    await chain_watcher.poll()

    deposit_addresses.allocate(ALSO_OURS)
    paid = usdt_transfer(PAYER, ALSO_OURS, 2)
    chain.mine(paid)
    await chain_watcher.poll()

    assert [t.tx_hash for t in published.of(TransferObserved)] == [paid.txid]


async def test_a_reorg_orphans_the_published_transfers_only() -> None:
    chain, published = FakeChain(), Published()
    chain_watcher = make_watcher(chain, RecordingFilter(OURS), published)
    to_us = usdt_transfer(PAYER, OURS, 1)
    chain.mine(to_us, usdt_transfer(PAYER, STRANGER, 2))
    chain.mine(usdt_transfer(PAYER, ANOTHER_STRANGER, 3))
    await chain_watcher.poll()

    chain.reorg(2, [], [], extra=1)
    await chain_watcher.poll()

    assert [(o.tx_hash, o.to_address) for o in published.of(TransferOrphaned)] == [
        (to_us.txid, OURS)
    ]
    assert chain_watcher.cursor == chain.head.number


async def test_blocks_kept_before_the_filter_existed_orphan_only_our_transfers() -> None:
    chain, published, store = FakeChain(), Published(), MemoryWatcherStore()
    chain.mine_empty(1)
    await make_watcher(chain, RecordingFilter(OURS), published, store).poll()
    to_us = usdt_transfer(PAYER, OURS, 1)
    to_them = usdt_transfer(PAYER, STRANGER, 2)
    block = chain.mine(to_us, to_them)
    timestamp = block_time(block.timestamp)
    legacy = [
        TransferObserved(
            tx_hash=tx.txid,
            log_index=0,
            block_number=block.number,
            block_id=block.block_id,
            block_timestamp=timestamp,
            contract_address=USDT,
            from_address=PAYER,
            to_address=to,
            amount=amount,
        )
        for tx, to, amount in ((to_us, OURS, 1), (to_them, STRANGER, 2))
    ]
    # What a watcher that published every transfer left in the store.
    await store.save_block(
        StoredBlock(block.number, block.block_id, block.parent_hash, timestamp, tuple(legacy))
    )

    chain.reorg(1, [])
    await make_watcher(chain, RecordingFilter(OURS), published, store).poll()

    assert [o.to_address for o in published.of(TransferOrphaned)] == [OURS]


async def test_a_failing_filter_fails_the_poll_and_the_block_is_retried() -> None:
    chain, published, store = FakeChain(), Published(), MemoryWatcherStore()
    deposit_addresses = RecordingFilter(OURS)
    chain_watcher = make_watcher(chain, deposit_addresses, published, store)
    paid = usdt_transfer(PAYER, OURS, 3)
    chain.mine_empty(1)
    chain.mine(paid)
    deposit_addresses.fail = True

    with pytest.raises(ConnectionError):
        await chain_watcher.poll()
    assert await store.load_cursor() == 1

    deposit_addresses.fail = False
    await chain_watcher.poll()
    assert [t.tx_hash for t in published.of(TransferObserved)] == [paid.txid]
    assert await store.load_cursor() == 2
