"""The chain watcher against a fake java-tron node over HTTP, with the in-memory store."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from prometheus_client import REGISTRY

from app.adapters.tron.address_filter import MemoryDepositAddressFilter
from app.adapters.tron.errors import NodeUnavailable, TokenContractMismatch
from app.adapters.tron.node import TronNode
from app.adapters.tron.starts import BlockRange, StartMode
from app.adapters.tron.store import MemoryWatcherStore
from app.adapters.tron.watcher import ChainWatcher, Publish
from app.domain.observations import (
    ChainHeadAdvanced,
    Observation,
    TransferObserved,
    TransferOrphaned,
)
from tests.component.chain.chain_fake_node import (
    APPROVAL_TOPIC,
    USDT,
    FakeChain,
    FakeTx,
    Published,
    new_txid,
    transfer_log,
    usdt_transfer,
    word,
)

pytestmark = pytest.mark.component

ALICE = "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"
BOB = "TSeJkUh4Qv67VNFwY8LaAxERygNdy6NQZK"
CAROL = "TYJPRrdB5APNeRs4R7fYZSwW3TcrTKw2gx"
# The recipients of these tests' transfers are the platform's deposit addresses; ALICE pays.
# tests/unit/chain/test_chain_watcher_deposit_filter.py covers transfers to anybody else.
OUR_DEPOSIT_ADDRESSES = (BOB, CAROL)


def watcher(
    node: TronNode,
    store: MemoryWatcherStore,
    publish: Publish,
    **kwargs: object,
) -> ChainWatcher:
    kwargs.setdefault("start_height", 1)
    kwargs.setdefault("deposit_addresses", MemoryDepositAddressFilter(OUR_DEPOSIT_ADDRESSES))
    return ChainWatcher(node, store, publish, USDT, **kwargs)  # type: ignore[arg-type]


def transfer_ids(published: Published) -> list[tuple[str, int]]:
    return [(t.tx_hash, t.log_index) for t in published.of(TransferObserved)]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_payment_is_observed_once_with_amount_block_and_parties(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    tx = usdt_transfer(ALICE, BOB, 9_990_000)
    fake_chain.mine_empty(2)
    block = fake_chain.mine(tx)
    fake_chain.mine_empty(2)

    processed = await watcher(node, MemoryWatcherStore(), published).poll()

    assert processed == 5
    [observed] = published.of(TransferObserved)
    assert isinstance(observed, TransferObserved)
    assert (observed.tx_hash, observed.log_index) == (tx.txid, 0)
    assert observed.amount == 9_990_000
    assert (observed.from_address, observed.to_address) == (ALICE, BOB)
    assert (observed.block_number, observed.block_id) == (block.number, block.block_id)
    assert observed.block_timestamp.timestamp() * 1000 == block.timestamp
    assert observed.contract_address == USDT
    head = published.of(ChainHeadAdvanced)[-1]
    assert isinstance(head, ChainHeadAdvanced)
    assert (head.head_number, head.head_block_id) == (5, fake_chain.head.block_id)
    assert head.block_timestamp is not None  # the chain's clock, which invoice expiry waits for
    assert head.block_timestamp.timestamp() * 1000 == fake_chain.head.timestamp


async def test_the_next_poll_processes_only_new_blocks(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    chain_watcher = watcher(node, MemoryWatcherStore(), published)
    fake_chain.mine(usdt_transfer(ALICE, BOB, 1))
    assert await chain_watcher.poll() == 1
    assert await chain_watcher.poll() == 0
    fake_chain.mine(usdt_transfer(ALICE, BOB, 2))
    fake_chain.mine_empty(1)

    assert await chain_watcher.poll() == 2
    assert [t.amount for t in published.of(TransferObserved)] == [1, 2]


async def test_without_a_start_height_it_starts_at_the_head(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    fake_chain.mine(usdt_transfer(ALICE, BOB, 1))
    fake_chain.mine(usdt_transfer(ALICE, BOB, 2))
    chain_watcher = watcher(node, MemoryWatcherStore(), published, start_height=None)

    assert await chain_watcher.poll() == 1
    assert [t.amount for t in published.of(TransferObserved)] == [2]
    assert chain_watcher.cursor == fake_chain.head.number


async def test_only_successful_transfer_logs_of_the_usdt_contract_count(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    reverted = usdt_transfer(ALICE, BOB, 5, result="REVERT")
    out_of_energy = usdt_transfer(ALICE, BOB, 6, result="OUT_OF_ENERGY")
    trx_only = FakeTx(new_txid(), [], result=None)
    other_token = FakeTx(
        new_txid(), [transfer_log(ALICE, BOB, 7, contract="TEkxiTehnzSmSe2XqrBj4w32RUN966rdz8")]
    )
    approval_then_transfer = FakeTx(
        new_txid(),
        [
            {
                "address": transfer_log(ALICE, BOB, 0)["address"],
                "topics": [APPROVAL_TOPIC, word(ALICE), word(CAROL)],
                "data": "00" * 32,
            },
            transfer_log(ALICE, CAROL, 8),
            transfer_log(CAROL, BOB, 9),
        ],
    )
    fake_chain.mine(reverted, out_of_energy, trx_only, other_token, approval_then_transfer)

    await watcher(node, MemoryWatcherStore(), published).poll()

    observed = published.of(TransferObserved)
    assert [(t.tx_hash, t.log_index, t.amount) for t in observed] == [
        (approval_then_transfer.txid, 1, 8),
        (approval_then_transfer.txid, 2, 9),
    ]


async def test_a_reorg_of_depth_3_orphans_the_transfer_and_it_is_observed_again(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    chain_watcher = watcher(node, MemoryWatcherStore(), published)
    tx = usdt_transfer(ALICE, BOB, 9_990_000)
    fake_chain.mine_empty(2)
    first = fake_chain.mine(tx)
    fake_chain.mine_empty(2)
    await chain_watcher.poll()
    reorgs_before = sample("checkout_chain_reorgs_total")

    # The last 3 blocks are replaced; the payment is left out of the new branch at first ...
    fake_chain.reorg(3, [], [], [], extra=1)
    await chain_watcher.poll()

    [orphan] = published.of(TransferOrphaned)
    assert isinstance(orphan, TransferOrphaned)
    assert (orphan.tx_hash, orphan.log_index) == (tx.txid, 0)
    assert (orphan.block_number, orphan.block_id) == (first.number, first.block_id)
    assert orphan.to_address == BOB
    # The fork point goes out as a head with the orphans, before anything of the new branch:
    # every partition moves its head back to it (app/domain/deposit.py, ConfirmationWatch).
    unwound = next(call for call in published.calls if orphan in call)
    assert isinstance(unwound[-1], ChainHeadAdvanced)
    assert unwound[-1].head_number == first.number - 1
    assert sample("checkout_chain_reorgs_total") == reorgs_before + 1
    assert chain_watcher.cursor == fake_chain.head.number

    # ... and re-included two blocks later.
    fake_chain.mine_empty(1)
    again = fake_chain.mine(tx)
    await chain_watcher.poll()

    observed = published.of(TransferObserved)
    assert [(t.tx_hash, t.block_number) for t in observed] == [
        (tx.txid, first.number),
        (tx.txid, again.number),
    ]
    assert observed[-1].block_id == again.block_id


async def test_a_same_length_reorg_at_the_tip_is_noticed_without_a_new_block(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    chain_watcher = watcher(node, MemoryWatcherStore(), published)
    tx = usdt_transfer(ALICE, BOB, 1)
    fake_chain.mine_empty(3)
    fake_chain.mine(tx)
    await chain_watcher.poll()

    fake_chain.reorg(1, [])  # same height, another block, the payment left out
    await chain_watcher.poll()

    assert [o.tx_hash for o in published.of(TransferOrphaned)] == [tx.txid]
    assert chain_watcher.cursor == fake_chain.head.number


async def test_a_reorg_below_the_kept_window_pages_orphans_the_kept_and_reads_on(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    fake_chain.solid_lag = 1
    store = MemoryWatcherStore()
    chain_watcher = watcher(node, store, published, reorg_window=2)
    fake_chain.mine_empty(9)
    tx = usdt_transfer(ALICE, BOB, 9_990_000)
    kept = fake_chain.mine(tx)  # block 10: in the kept window (blocks 9 and 10)
    await chain_watcher.poll()
    lowest_kept = min(block.number for block in await store.load_window())
    beyond_before = sample("checkout_chain_reorgs_beyond_window_total")

    # Six blocks replaced, deeper than the two kept: the transfer is left out, and a new
    # payment lands on the new branch.
    again = usdt_transfer(ALICE, BOB, 5_000_000)
    fake_chain.reorg(6, [], [], [], [], [again], extra=1)
    await chain_watcher.poll()

    [orphan] = published.of(TransferOrphaned)
    assert (orphan.tx_hash, orphan.block_id) == (tx.txid, kept.block_id)
    assert sample("checkout_chain_reorgs_beyond_window_total") == beyond_before + 1
    # It reads on from the lowest kept height, on the node's chain: the new payment is seen.
    assert chain_watcher.cursor == fake_chain.head.number
    assert [t.tx_hash for t in published.of(TransferObserved)] == [tx.txid, again.txid]
    # The partitions' heads move back to the anchor first, with the orphan.
    unwound = next(call for call in published.calls if orphan in call)
    assert isinstance(unwound[-1], ChainHeadAdvanced)
    assert unwound[-1].head_number == lowest_kept - 1
    # The blocks read before below the window cannot be verified: recorded for a rescan.
    start = store.starts[-1]
    assert (start.mode, start.first_block, start.previous_block) == (
        StartMode.REORG,
        lowest_kept,
        10,
    )
    assert start.gap == BlockRange(lowest_kept - 2, lowest_kept - 1)


async def test_a_failed_publish_leaves_the_cursor_and_the_block_is_retried(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    store = MemoryWatcherStore()
    chain_watcher = watcher(node, store, published)
    fake_chain.mine(usdt_transfer(ALICE, BOB, 1))
    fake_chain.mine(usdt_transfer(ALICE, BOB, 2))
    fake_chain.mine(usdt_transfer(ALICE, BOB, 3))
    published.fail_when = ChainHeadAdvanced  # transfers go out, the head update fails

    with pytest.raises(ConnectionError):
        await chain_watcher.poll()
    published.fail_when = None
    published.calls.clear()
    fake_chain.mine(usdt_transfer(ALICE, BOB, 4))
    await chain_watcher.poll()

    assert [t.amount for t in published.of(TransferObserved)] == [4]
    assert await store.load_cursor() == 4


async def test_a_restarted_watcher_neither_skips_nor_repeats_a_transfer(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    store = MemoryWatcherStore()
    expected = []
    for amount in range(1, 7):
        tx = usdt_transfer(ALICE, BOB, amount)
        expected.append((tx.txid, 0))
        fake_chain.mine(tx)
    first = watcher(node, store, published, fetch_concurrency=2)
    published.fail_on_call = 3  # the worker dies while publishing block 3
    with pytest.raises(ConnectionError):
        await first.poll()

    restarted = watcher(node, store, published)
    await restarted.poll()

    assert transfer_ids(published) == expected


async def test_node_errors_are_retried_and_counted_without_skipping_a_block(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    fake_chain.mine(usdt_transfer(ALICE, BOB, 1))
    fake_chain.mine(usdt_transfer(ALICE, BOB, 2))
    errors_before = sample(
        "checkout_chain_node_errors_total", endpoint="getblockbynum", reason="http_5xx"
    )
    fake_chain.fail_next(2, endpoint="getblockbynum")

    await watcher(node, MemoryWatcherStore(), published).poll()

    assert [t.amount for t in published.of(TransferObserved)] == [1, 2]
    assert (
        sample("checkout_chain_node_errors_total", endpoint="getblockbynum", reason="http_5xx")
        == errors_before + 2
    )


async def test_a_node_down_beyond_the_retries_raises_and_the_next_poll_catches_up(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    store = MemoryWatcherStore()
    chain_watcher = watcher(node, store, published, fetch_concurrency=1)
    fake_chain.mine(usdt_transfer(ALICE, BOB, 1))
    await chain_watcher.poll()
    fake_chain.mine(usdt_transfer(ALICE, BOB, 2))
    fake_chain.mine(usdt_transfer(ALICE, BOB, 3))
    fake_chain.fail_next(4, endpoint="gettransactioninfobyblocknum")

    with pytest.raises(NodeUnavailable):
        await chain_watcher.poll()
    assert await store.load_cursor() == 1

    assert await chain_watcher.poll() == 2
    assert [t.amount for t in published.of(TransferObserved)] == [1, 2, 3]


async def test_receipts_from_another_branch_than_the_header_are_fetched_again(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    chain_watcher = watcher(node, MemoryWatcherStore(), published)
    fake_chain.mine_empty(2)
    await chain_watcher.poll()
    stale = usdt_transfer(ALICE, BOB, 1)
    fresh = usdt_transfer(ALICE, CAROL, 2)
    fake_chain.mine(stale)
    reorged = False

    def reorg_between_header_and_receipts(number: int) -> None:
        nonlocal reorged
        if not reorged and number == 3:
            reorged = True
            fake_chain.reorg(1, [fresh])

    fake_chain.before_receipts = reorg_between_header_and_receipts
    await chain_watcher.poll()

    observed = published.of(TransferObserved)
    assert [(t.tx_hash, t.block_id) for t in observed] == [
        (fresh.txid, fake_chain.blocks[3].block_id)
    ]


@pytest.mark.parametrize(("solid_lag", "lowest_kept"), [(19, 81), (3, 91)])
async def test_the_kept_window_spans_the_unsolidified_blocks_and_at_least_reorg_window(
    fake_chain: FakeChain, node: TronNode, published: Published, solid_lag: int, lowest_kept: int
) -> None:
    store = MemoryWatcherStore()
    fake_chain.solid_lag = solid_lag
    fake_chain.mine_empty(100)

    await watcher(node, store, published, reorg_window=10).poll()

    kept = [block.number for block in await store.load_window()]
    assert kept == list(range(lowest_kept, 101))


async def test_the_usdt_contract_must_have_6_decimals(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    chain_watcher = watcher(node, MemoryWatcherStore(), published)
    await chain_watcher.check_token()

    fake_chain.decimals = 18
    with pytest.raises(TokenContractMismatch, match="TRON_USDT_CONTRACT"):
        await chain_watcher.check_token()


async def test_catch_up_publishes_a_head_update_while_it_works(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    fake_chain.mine_empty(40)

    await watcher(node, MemoryWatcherStore(), published, head_every=16).poll()

    heads = [h.head_number for h in published.of(ChainHeadAdvanced)]
    assert heads == [16, 32, 40]
    assert all(h.solidified_number <= h.head_number for h in published.of(ChainHeadAdvanced))


async def test_the_api_key_header_is_sent_to_any_node_url(
    fake_chain: FakeChain, node_url: str
) -> None:
    async with TronNode(node_url, api_key="key-for-test") as keyed:
        await keyed.node_head()

    [(_, _, headers)] = fake_chain.requests
    assert headers["TRON-PRO-API-KEY"] == "key-for-test"


async def test_an_empty_answer_for_a_block_below_the_head_is_retried_as_a_bad_response(
    fake_chain: FakeChain, node: TronNode
) -> None:
    before = sample(
        "checkout_chain_node_errors_total", endpoint="getblockbynum", reason="bad_response"
    )

    with pytest.raises(NodeUnavailable, match="getblockbynum"):
        await node.block_header(5)  # the fake chain has only its genesis block

    after = sample(
        "checkout_chain_node_errors_total", endpoint="getblockbynum", reason="bad_response"
    )
    assert after == before + 4


async def test_run_keeps_polling_through_a_node_outage_until_stopped(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    stop = asyncio.Event()

    async def publish_then_stop(observations: Sequence[Observation]) -> None:
        await published(observations)
        if any(isinstance(o, TransferObserved) for o in observations):
            stop.set()

    chain_watcher = watcher(node, MemoryWatcherStore(), publish_then_stop)
    fake_chain.mine(usdt_transfer(ALICE, BOB, 1))
    fake_chain.fail_next(8, endpoint="getnodeinfo")  # two polls' worth of retries fail

    await asyncio.wait_for(chain_watcher.run(poll_interval=0.01, stop=stop), timeout=30)

    assert [t.amount for t in published.of(TransferObserved)] == [1]
    assert sample("checkout_chain_node_unavailable_total", endpoint="getnodeinfo") >= 2


async def test_a_reorg_just_after_the_first_start_is_unwound(
    fake_chain: FakeChain, node: TronNode, published: Published
) -> None:
    fake_chain.mine_empty(10)
    chain_watcher = watcher(node, MemoryWatcherStore(), published, start_height=None)
    await chain_watcher.poll()  # starts at the head, block 10
    assert chain_watcher.cursor == 10

    tx = usdt_transfer(ALICE, BOB, 7)
    fake_chain.reorg(3, [], [tx], [], extra=1)  # replaces 8, 9 and 10: below the start
    await chain_watcher.poll()

    assert [(t.tx_hash, t.block_number) for t in published.of(TransferObserved)] == [(tx.txid, 9)]
    assert chain_watcher.cursor == 11
