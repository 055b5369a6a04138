"""The chain watcher: walks the Tron chain block by block and reports payments to our addresses.

One watcher is active at a time (the Faust leader, or one service). Each ``poll()`` processes every
block from the persisted cursor + 1 up to the node's head, in order, at full speed; for each block
it decodes the watched token's transfers, keeps those whose recipient is one of our deposit
addresses (one ``DepositAddressFilter`` query per block, see app/adapters/tron/address_filter.py),
publishes them as ``TransferObserved`` and only then saves the block with them and moves the cursor
(at-least-once: a crash between the two republishes that block's transfers, which consumers
recognise by ``(tx_hash, log_index)``; nothing is ever skipped). Everybody else's transfers are
counted, neither published nor kept.

Reorganisations: a block whose ``parentHash`` is not the id of the block kept at the height below,
or a node head whose id differs from the kept block at that height, means the node switched
branches. The watcher walks down to the highest height where the node's block id equals its own
(the fork point), publishes ``TransferOrphaned`` for every published transfer of the replaced
blocks and the fork point as a chain head (partitions move their heads back to it), rewinds the
cursor to the fork point and processes the new branch as usual (asking the filter again: an
address allocated meanwhile counts on the new branch).

Where it starts without a cursor (app/adapters/tron/starts.py): at the node's head on the
platform's first start only. A platform that watched before and lost this watcher's cursor (or
renamed the watcher) would skip every payment made meanwhile: the watcher refuses, reading
nothing, until an operator runs ``checkout chain start`` or sets ``TRON_WATCHER_START_HEIGHT``.
Every start is recorded by the store, with the blocks it left unread, if any.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from app.adapters.tron import metrics
from app.adapters.tron.address_filter import DepositAddressFilter
from app.adapters.tron.addresses import to_base58
from app.adapters.tron.errors import (
    NodeUnavailable,
    ReorgBeyondWindow,
    TokenContractMismatch,
    WatcherRefusesToStart,
)
from app.adapters.tron.logs import block_time, decode_transfers
from app.adapters.tron.node import BlockHeader, NodeHead
from app.adapters.tron.settings import ChainSettings
from app.adapters.tron.starts import (
    BlockRange,
    PlatformHistory,
    StartMode,
    WatcherStart,
    describe_rescan,
    plan_start,
    refusal,
)
from app.adapters.tron.store import StoredBlock, WatcherStore
from app.domain.observations import (
    ChainHeadAdvanced,
    Observation,
    TransferObserved,
    TransferOrphaned,
)

log = logging.getLogger(__name__)

USDT_DECIMALS = 6
# A refusing watcher is asked again at every poll; its ERROR is repeated this often (seconds).
REFUSAL_LOG_EVERY = 60.0

Publish = Callable[[Sequence[Observation]], Awaitable[None]]
"""Receives observations in chain order and returns once they are durably handed on (e.g. Kafka
acknowledged them). Raising fails the poll without moving the cursor."""


class ChainNode(Protocol):
    async def node_head(self) -> NodeHead: ...

    async def block_header(self, number: int) -> BlockHeader: ...

    async def transaction_infos(self, number: int) -> list[Mapping[str, Any]]: ...

    async def token_decimals(self, contract: str) -> int: ...


@dataclass(frozen=True)
class _Fetched:
    header: BlockHeader
    receipts: list[Mapping[str, Any]]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ChainWatcher:
    """Turns the node's blocks into observations; see the module docstring for the guarantees."""

    def __init__(
        self,
        node: ChainNode,
        store: WatcherStore,
        publish: Publish,
        usdt_contract: str,
        *,
        deposit_addresses: DepositAddressFilter,
        start_height: int | None = None,
        reorg_window: int = 32,
        fetch_concurrency: int = 8,
        head_every: int = 16,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if reorg_window < 2 or fetch_concurrency < 1 or head_every < 1:
            raise ValueError("reorg_window ≥ 2, fetch_concurrency ≥ 1 and head_every ≥ 1")
        self._node = node
        self._store = store
        self._publish_to = publish
        self._contract = to_base58(usdt_contract)
        self._deposit_addresses = deposit_addresses
        self._start_height = start_height
        self._reorg_window = reorg_window
        self._fetch_concurrency = fetch_concurrency
        self._head_every = head_every
        self._clock = clock
        self._lock = asyncio.Lock()
        self._loaded = False
        self._cursor: int | None = None
        self._window: dict[int, StoredBlock] = {}
        self._history: PlatformHistory | None = None
        self._started = False  # this instance's start is recorded
        self._refusal_logged_at: float | None = None

    @classmethod
    def from_settings(
        cls,
        settings: ChainSettings,
        *,
        node: ChainNode,
        store: WatcherStore,
        publish: Publish,
        deposit_addresses: DepositAddressFilter,
    ) -> ChainWatcher:
        return cls(
            node,
            store,
            publish,
            settings.usdt_contract,
            deposit_addresses=deposit_addresses,
            start_height=settings.start_height,
            reorg_window=settings.reorg_window,
            fetch_concurrency=settings.fetch_concurrency,
        )

    @property
    def cursor(self) -> int | None:
        """The last block processed (None before the first poll)."""
        return self._cursor

    async def check_token(self) -> None:
        """Refuse to start unless the configured contract answers ``decimals() == 6``."""
        decimals = await self._node.token_decimals(self._contract)
        if decimals != USDT_DECIMALS:
            raise TokenContractMismatch(
                f"TRON_USDT_CONTRACT {self._contract} has {decimals} decimals, expected "
                f"{USDT_DECIMALS}: wrong contract for this network?"
            )

    async def poll(self) -> int:
        """Process every block up to the node's current head; return how many were processed."""
        async with self._lock:
            try:
                return await self._poll()
            except BaseException:
                # Whatever happened mid-block, the store is the truth: reload it next time.
                self._loaded = False
                raise

    async def run(self, *, poll_interval: float, stop: asyncio.Event | None = None) -> None:
        """Poll forever (a single-active service); a failed poll is logged and retried."""
        stop = stop or asyncio.Event()
        while True:
            try:
                await self.check_token()
                break
            except NodeUnavailable as exc:
                log.warning("chain watcher waits for the node to check the token: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll_interval)
            if stop.is_set():
                return
        while not stop.is_set():
            try:
                await self.poll()
            except (ReorgBeyondWindow, TokenContractMismatch):
                raise
            except WatcherRefusesToStart:
                pass  # logged by the poll; an operator's `checkout chain start` ends it
            except NodeUnavailable as exc:
                log.warning("chain watcher waits for the node: %s", exc)
            except Exception:
                # Publishing or the store failed: the cursor did not move, the next poll retries.
                log.exception("chain watcher poll failed; retrying in %.1fs", poll_interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll_interval)

    async def _poll(self) -> int:
        if not self._loaded:
            await self._load()
        if self._cursor is None:
            await self._refuse_if_watched_before()
        processed = 0
        while True:
            head = await self._node.node_head()
            cursor = await self._ensure_cursor(head)
            self._observe(head, cursor)
            if cursor >= head.head_number:
                if not await self._tip_still_ours(head):
                    continue
                return processed
            # After catching up (or unwinding a reorg) look at the head again: it may have moved.
            done = await self._catch_up(cursor, head)
            processed += done
            if done:
                await self._publish_head(head)
                await self._prune(head)

    async def _load(self) -> None:
        self._cursor = await self._store.load_cursor()
        self._window = {block.number: block for block in await self._store.load_window()}
        self._loaded = True
        if self._cursor is not None:
            metrics.CURSOR_HEIGHT.set(self._cursor)

    async def _refuse_if_watched_before(self) -> None:
        """No cursor: refuse (before asking the node anything) if the platform watched before."""
        self._history = await self._store.load_history()
        reason = refusal(self._history, start_height=self._start_height)
        if reason is None:
            return
        metrics.REFUSAL.mark()
        now = time.monotonic()
        if self._refusal_logged_at is None or now - self._refusal_logged_at >= REFUSAL_LOG_EVERY:
            self._refusal_logged_at = now
            log.error("%s", reason)
        raise WatcherRefusesToStart(reason)

    async def _ensure_cursor(self, head: NodeHead) -> int:
        if self._cursor is None:
            history = self._history or await self._store.load_history()
            start = plan_start(history, head=head.head_number, start_height=self._start_height)
            self._cursor = await self.start_at(start)
            self._started = True
            metrics.REFUSAL.clear()
            _log_start(history.watcher_name, start, started=self._cursor == start.first_block - 1)
        elif not self._started:
            await self._store.record_start(
                WatcherStart(self._cursor + 1, StartMode.RESUME, previous_block=self._cursor)
            )
            self._started = True
            metrics.REFUSAL.clear()
            log.info("chain watcher resumes from block %d, after its cursor", self._cursor + 1)
        return self._cursor

    async def start_at(self, start: WatcherStart) -> int:
        """Set the cursor before ``start.first_block`` and record ``start``; return the cursor.

        The blocks just below the first one are kept as the window's anchor, without their
        transfers (they precede the start), so a reorg reaching below the first processed block
        can still be unwound instead of stopping the watcher. Cursor, anchor and the record of
        the start are written in one transaction. If a cursor was stored meanwhile (another
        watcher, an operator), it wins: its value is returned and nothing is written.
        """
        first = start.first_block
        anchors = await self._anchors_below(first)
        cursor = await self._store.init_cursor(first - 1, anchors=anchors, start=start)
        if cursor != first - 1:
            self._window = {block.number: block for block in await self._store.load_window()}
            return cursor
        self._window.update((anchor.number, anchor) for anchor in anchors)
        return cursor

    async def _anchors_below(self, first: int) -> list[StoredBlock]:
        """The node's ``TRON_REORG_WINDOW`` blocks just below ``first``, headers only, linked."""
        low = max(0, first - self._reorg_window)
        headers = await asyncio.gather(*(self._node.block_header(n) for n in range(low, first)))
        for below, above in itertools.pairwise(headers):
            if above.parent_hash != below.block_id:
                raise NodeUnavailable("getblockbynum", "the chain changed while anchoring; retry")
        return [
            StoredBlock(h.number, h.block_id, h.parent_hash, block_time(h.timestamp_ms))
            for h in headers
        ]

    async def _tip_still_ours(self, head: NodeHead) -> bool:
        """False (after unwinding) when the node's head block is not the one we kept there."""
        ours = self._window.get(head.head_number)
        if ours is None or ours.block_id == head.head_block_id:
            return True
        await self._unwind(head.head_number)
        return False

    async def _catch_up(self, cursor: int, head: NodeHead) -> int:
        """Fetch blocks cursor+1..head ahead (bounded) and apply them in order until a reorg.

        Returns the number of blocks applied.
        """
        next_height = cursor + 1
        pending: deque[asyncio.Task[_Fetched]] = deque()
        applied = 0
        try:
            while True:
                while len(pending) < self._fetch_concurrency and next_height <= head.head_number:
                    pending.append(asyncio.create_task(self._fetch(next_height)))
                    next_height += 1
                if not pending:
                    return applied
                fetched = await pending.popleft()
                if not await self._apply(fetched):
                    return applied
                applied += 1
                if applied % self._head_every == 0:
                    await self._publish_head(head)
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def _fetch(self, number: int) -> _Fetched:
        header, receipts = await asyncio.gather(
            self._node.block_header(number), self._node.transaction_infos(number)
        )
        # The two calls may straddle a reorg at the head: then the receipts belong to another
        # block than the header. Detect it by the transaction ids and fetch again.
        for _ in range(3):
            if _same_transactions(header, receipts):
                return _Fetched(header, receipts)
            header, receipts = await asyncio.gather(
                self._node.block_header(number), self._node.transaction_infos(number)
            )
        if _same_transactions(header, receipts):
            return _Fetched(header, receipts)
        raise NodeUnavailable(
            "gettransactioninfobyblocknum",
            f"receipts of block {number} do not match its transactions",
        )

    async def _apply(self, fetched: _Fetched) -> bool:
        header = fetched.header
        parent = self._window.get(header.number - 1)
        if parent is not None and parent.block_id != header.parent_hash:
            await self._unwind(header.number - 1)
            return False
        timestamp = block_time(header.timestamp_ms)
        seen = decode_transfers(
            fetched.receipts,
            contract=self._contract,
            block_number=header.number,
            block_id=header.block_id,
            block_timestamp=timestamp,
        )
        transfers = await self._to_our_addresses(seen)
        if transfers:
            await self._publish(transfers)
        block = StoredBlock(
            header.number, header.block_id, header.parent_hash, timestamp, tuple(transfers)
        )
        await self._store.save_block(block)
        self._window[block.number] = block
        self._cursor = block.number
        metrics.BLOCKS_PROCESSED.inc()
        metrics.TRANSFERS_SEEN.inc(len(seen))
        metrics.TRANSFERS_OBSERVED.inc(len(transfers))
        metrics.CURSOR_HEIGHT.set(block.number)
        return True

    async def _to_our_addresses(self, seen: list[TransferObserved]) -> list[TransferObserved]:
        """The transfers paying one of our deposit addresses, in chain order (one query at most).

        Asked again for every block, never cached as "not ours": an address allocated a moment
        ago must count from the next block on.
        """
        if not seen:
            return []
        ours = await self._deposit_addresses.ours({transfer.to_address for transfer in seen})
        return [transfer for transfer in seen if transfer.to_address in ours]

    async def _unwind(self, mismatch_height: int) -> None:
        """Find the fork point at or below ``mismatch_height``; orphan what is above it; rewind."""
        cursor = self._cursor
        assert cursor is not None
        fork = mismatch_height
        while True:
            ours = self._window.get(fork)
            if ours is None:
                await self._unwind_beyond_window(cursor)
                return
            theirs = await self._node.block_header(fork)
            if theirs.block_id == ours.block_id:
                break
            fork -= 1
        replaced = [self._window[n] for n in sorted(self._window, reverse=True) if n > fork]
        if not replaced:
            return  # the node's branch agrees with ours after all; fetch again
        orphans = await self._orphans_of(replaced)
        log.warning(
            "reorg: blocks %d..%d replaced, %d transfers orphaned",
            fork + 1,
            replaced[0].number,
            len(orphans),
        )
        # The fork point goes out as a head after the orphans: every partition moves its head
        # back to it, so a transfer on the new branch counts its confirmations from the new
        # branch's heads, never from the replaced blocks.
        fork_head = self._head_at(self._window[fork], fork)
        await self._publish([*orphans, fork_head])
        await self._store.rewind(fork, expected_cursor=cursor)
        for block in replaced:
            del self._window[block.number]
        self._cursor = fork
        metrics.REORGS.inc()
        metrics.REORG_DEPTH.observe(len(replaced))
        metrics.TRANSFERS_ORPHANED.inc(len(orphans))
        metrics.CURSOR_HEIGHT.set(fork)

    async def _orphans_of(self, replaced: Sequence[StoredBlock]) -> list[TransferOrphaned]:
        """``TransferOrphaned`` for every published transfer of the ``replaced`` blocks."""
        orphans = [
            TransferOrphaned(
                tx_hash=transfer.tx_hash,
                log_index=transfer.log_index,
                block_number=block.number,
                block_id=block.block_id,
                to_address=transfer.to_address,
            )
            for block in replaced
            for transfer in block.transfers
        ]
        if orphans:
            # Kept transfers are the published ones, all still ours (an address is never given
            # up). Blocks kept by a version that published every transfer may hold others.
            published = await self._deposit_addresses.ours({o.to_address for o in orphans})
            orphans = [orphan for orphan in orphans if orphan.to_address in published]
        return orphans

    async def _unwind_beyond_window(self, cursor: int) -> None:
        """The node replaced every kept block: a reorg deeper than the window.

        Detection goes on for what can be verified. Every transfer published from the kept
        blocks is orphaned (each was compared with the node's block at its height: all
        replaced); the watcher anchors again on the node's blocks just below its lowest kept one
        and reads on from there, so payments on the new branch are detected as usual. The blocks
        below, read before and no longer verifiable, are recorded as the start's gap (``checkout
        chain status`` shows it, ``checkout chain rescan`` reads them again), and the operator is
        paged (``checkout_chain_reorgs_beyond_window_total``, alert ChainReorgBeyondWindow).
        A node that follows another network fails the token check first, and the watcher
        refuses as it does at its start.
        """
        lowest = min(self._window)
        if lowest == 0:
            raise ReorgBeyondWindow("the node replaced the genesis block: another chain")
        await self.check_token()
        replaced = [self._window[n] for n in sorted(self._window, reverse=True)]
        orphans = await self._orphans_of(replaced)
        anchors = await self._anchors_below(lowest)
        start = WatcherStart(
            lowest,
            StartMode.REORG,
            previous_block=cursor,
            gap=BlockRange(anchors[0].number, lowest - 1),
        )
        await self._publish([*orphans, self._head_at(anchors[-1], anchors[-1].number)])
        await self._store.reanchor(lowest - 1, anchors=anchors, expected_cursor=cursor, start=start)
        self._window = {anchor.number: anchor for anchor in anchors}
        self._cursor = lowest - 1
        metrics.REORGS.inc()
        metrics.REORGS_BEYOND_WINDOW.inc()
        metrics.REORG_DEPTH.observe(len(replaced))
        metrics.TRANSFERS_ORPHANED.inc(len(orphans))
        metrics.CURSOR_HEIGHT.set(self._cursor)
        assert start.gap is not None
        log.critical(
            "reorg deeper than the kept window: blocks %d..%d all replaced, %d transfers "
            "orphaned; reading on from block %d on the node's chain. Blocks %s were read before "
            "and cannot be verified: run %s",
            lowest,
            replaced[0].number,
            len(orphans),
            lowest,
            start.gap,
            describe_rescan(start.gap),
        )

    async def _publish_head(self, head: NodeHead) -> None:
        cursor = self._cursor
        if cursor is None or cursor not in self._window:
            return
        await self._publish([self._head_at(self._window[cursor], head.solidified_number)])

    def _head_at(self, block: StoredBlock, solidified_number: int) -> ChainHeadAdvanced:
        return ChainHeadAdvanced(
            head_number=block.number,
            head_block_id=block.block_id,
            solidified_number=min(solidified_number, block.number),
            observed_at=self._clock(),
            block_timestamp=block.timestamp,
        )

    async def _publish(self, observations: Sequence[Observation]) -> None:
        try:
            await self._publish_to(observations)
        except Exception:
            metrics.PUBLISH_FAILURES.inc()
            raise

    async def _prune(self, head: NodeHead) -> None:
        if self._cursor is None or not self._window:
            return
        below = min(head.solidified_number, self._cursor - self._reorg_window + 1)
        if below <= min(self._window):
            return
        await self._store.prune(below)
        for number in [n for n in self._window if n < below]:
            del self._window[number]

    def _observe(self, head: NodeHead, cursor: int) -> None:
        metrics.NODE_HEAD_HEIGHT.set(head.head_number)
        metrics.NODE_SOLIDIFIED_HEIGHT.set(head.solidified_number)
        metrics.HEAD_LAG.set(max(0, head.head_number - cursor))


def _log_start(watcher_name: str, start: WatcherStart, *, started: bool) -> None:
    if not started:
        log.info(
            "chain watcher %s found a cursor stored meanwhile and resumes from it", watcher_name
        )
        return
    why = {
        StartMode.FIRST: "the node's head: this platform's first start on this network",
        StartMode.SETTING: "TRON_WATCHER_START_HEIGHT",
    }.get(start.mode, start.mode.value)
    log.info("chain watcher %s starts at block %d (%s)", watcher_name, start.first_block, why)
    if start.gap is not None:
        # Payments in these blocks are never detected unless an operator reads them again.
        log.error(
            "chain watcher %s started at block %d, past block %d, the last its platform read: "
            "blocks %s (%d) were never read; run %s to detect the payments made there",
            watcher_name,
            start.first_block,
            start.previous_block,
            start.gap,
            start.gap.blocks,
            describe_rescan(start.gap),
        )


def _same_transactions(header: BlockHeader, receipts: list[Mapping[str, Any]]) -> bool:
    ids = [str(receipt.get("id", "")).lower() for receipt in receipts]
    return len(ids) == len(header.transaction_ids) and set(ids) == set(header.transaction_ids)
