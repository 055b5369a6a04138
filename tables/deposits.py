"""The payment agent's tables, partitioned like ``checkout.deposits`` (by deposit address).

Both are written only by the payment agent (agents/payments.py, through
app/services/deposits.py).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Final

import faust

from app.domain.deposit import ConfirmationWatch, DepositAccount
from app.runtime.topics import DEPOSITS


class DepositTable:
    """``deposits``: deposit address → ``DepositAccount.to_dict()`` (registration and payments)."""

    name: Final = "deposits"

    def __init__(self, table: MutableMapping[Any, Any]) -> None:
        self._table = table

    def get(self, deposit_address: str) -> DepositAccount | None:
        stored = self._table.get(deposit_address)
        return None if stored is None else DepositAccount.from_dict(stored)

    def put(self, account: DepositAccount) -> None:
        self._table[account.address] = account.to_dict()


class ConfirmationWatchTable:
    """``confirmation-watch``: ``"<partition>"`` → the partition's last chain head and the
    addresses whose payments still count confirmations."""

    name: Final = "confirmation-watch"

    def __init__(self, table: MutableMapping[Any, Any]) -> None:
        self._table = table

    def get(self, partition: int) -> ConfirmationWatch:
        stored = self._table.get(str(partition))
        return ConfirmationWatch() if stored is None else ConfirmationWatch.from_dict(stored)

    def put(self, partition: int, watch: ConfirmationWatch) -> None:
        self._table[str(partition)] = watch.to_dict()


def declare(app: faust.App) -> tuple[DepositTable, ConfirmationWatchTable]:
    # Raw keys: the same bytes the producers send, so a key hashes to the same partition in the
    # source topic and in the changelog (table reads are routed by that hash).
    deposits = app.Table(
        DepositTable.name,
        key_type=bytes,
        partitions=DEPOSITS.partitions,
        help="Each deposit address's invoice registration and the payments made to it",
    )
    watch = app.Table(
        ConfirmationWatchTable.name,
        key_type=bytes,
        partitions=DEPOSITS.partitions,
        help="Per partition: the last chain head and the addresses awaiting confirmations",
    )
    return DepositTable(deposits), ConfirmationWatchTable(watch)
