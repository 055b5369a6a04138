"""``checkout chain rescan``: read solidified blocks again and hand on the payments found there.

The chain watcher never skips a block, but an operator may need to look again — a deposit
address restored from a backup after its block was read, a node that served an incomplete block,
a cursor set by hand. The rescan reads blocks ``first..last`` from the node the way the watcher
does (the token's Transfer logs, kept when they pay one of our deposit addresses) and publishes
them as ``TransferObserved`` to the same topic. It leaves the watcher's cursor and window alone,
and reads only solidified blocks — those no reorganisation can replace — so nothing it publishes
can need orphaning later. Consumers recognise a transfer by ``(tx_hash, log_index)``: one they
have seen changes nothing, so a rescan is idempotent and can be repeated at will.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from app.adapters.tron.address_filter import DepositAddressFilter
from app.adapters.tron.logs import block_time, decode_transfers
from app.adapters.tron.watcher import ChainNode
from app.domain.observations import TransferObserved

# Blocks fetched at once, and published per batch (a batch is one round of acknowledgements).
FETCH_CONCURRENCY: Final = 8
BATCH_BLOCKS: Final = 200

Progress = Callable[[int, int], Awaitable[None]]


@dataclass
class RescanReport:
    first: int
    last: int
    blocks: int = 0
    transfers_seen: int = 0
    published: list[TransferObserved] = field(default_factory=list)


class ChainRescan:
    def __init__(
        self,
        node: ChainNode,
        deposit_addresses: DepositAddressFilter,
        publish: Callable[[Sequence[TransferObserved]], Awaitable[None]],
        *,
        token_contract: str,
    ) -> None:
        self._node = node
        self._deposit_addresses = deposit_addresses
        self._publish = publish
        self._contract = token_contract

    async def run(self, first: int, last: int, progress: Progress | None = None) -> RescanReport:
        """Blocks ``first..last`` inclusive, in order; returns what was found and published."""
        report = RescanReport(first=first, last=last)
        for low in range(first, last + 1, BATCH_BLOCKS):
            high = min(last, low + BATCH_BLOCKS - 1)
            found: list[TransferObserved] = []
            numbers = list(range(low, high + 1))
            for start in range(0, len(numbers), FETCH_CONCURRENCY):
                chunk = numbers[start : start + FETCH_CONCURRENCY]
                for seen in await asyncio.gather(*(self._transfers(n) for n in chunk)):
                    report.transfers_seen += len(seen)
                    found += seen
            ours = (
                await self._deposit_addresses.ours({t.to_address for t in found})
                if found
                else set()
            )
            mine = [transfer for transfer in found if transfer.to_address in ours]
            if mine:
                await self._publish(mine)
                report.published += mine
            report.blocks += len(numbers)
            if progress is not None:
                await progress(high, len(report.published))
        return report

    async def _transfers(self, number: int) -> list[TransferObserved]:
        header, receipts = await asyncio.gather(
            self._node.block_header(number), self._node.transaction_infos(number)
        )
        return decode_transfers(
            receipts,
            contract=self._contract,
            block_number=header.number,
            block_id=header.block_id,
            block_timestamp=block_time(header.timestamp_ms),
        )
