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
from tables.typed import AggregateTable, faust_table


class DepositTable(AggregateTable[DepositAccount]):
    """``deposits``: deposit address → ``DepositAccount.to_dict()`` (registration and payments)."""

    name: Final = "deposits"

    def __init__(self, table: MutableMapping[Any, Any]) -> None:
        super().__init__(table, load=DepositAccount.from_dict, key=lambda account: account.address)


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
    deposits = faust_table(
        app,
        DepositTable.name,
        partitions=DEPOSITS.partitions,
        help="Each deposit address's invoice and payments (written by the payment agent)",
    )
    watch = faust_table(
        app,
        ConfirmationWatchTable.name,
        partitions=DEPOSITS.partitions,
        help="Per partition: last chain head, addresses counting (written by the payment agent)",
    )
    return DepositTable(deposits), ConfirmationWatchTable(watch)
