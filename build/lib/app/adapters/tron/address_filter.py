"""Which of a block's transfer recipients are our deposit addresses.

The chain watcher reads every USDT transfer of every block; on mainnet nearly all of them are
somebody else's. It asks a ``DepositAddressFilter`` once per block which recipients are ours and
publishes only those transfers.

Why asking at block time is exact: a deposit address is committed to ``deposit_addresses``
(migration 0003) before its invoice exists, so before anybody can pay to it. A transfer to it is
therefore in a block that did not exist when the row was committed, and a query made after the
watcher fetched that block sees the row. There is no negative cache on purpose: "not ours" is only
true until the next allocation, and a stale "not ours" would silently lose a payment.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Protocol


class DepositAddressFilter(Protocol):
    async def ours(self, addresses: Collection[str]) -> set[str]:
        """The members of ``addresses`` that are deposit addresses of the platform."""


class MemoryDepositAddressFilter:
    """A set of addresses in process, for tests and the benchmark; ``allocate`` adds one."""

    def __init__(self, addresses: Iterable[str] = ()) -> None:
        self._addresses = set(addresses)

    def allocate(self, address: str) -> None:
        self._addresses.add(address)

    async def ours(self, addresses: Collection[str]) -> set[str]:
        return self._addresses.intersection(addresses)
