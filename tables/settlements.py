"""The settlement agent's table, partitioned like the domain events (by invoice id).

Written only by the settlement agent (agents/settlements.py, through app/services/settlement.py);
the merchant API reads it on the worker that owns the invoice.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Final

import faust

from app.domain.commands import settlement_id_for
from app.domain.settlement import Settlement
from app.domain.statuses import SettlementStatus
from app.runtime.topics import DOMAIN_EVENTS
from tables.typed import AggregateTable, faust_table


class SettlementTable(AggregateTable[Settlement]):
    """``settlements``: invoice id → ``Settlement.to_dict()`` of its latest round (what the
    merchant API shows); a reversed round is kept under its settlement id as well, so a
    redelivered reversal re-publishes that round's history after a later round exists."""

    name: Final = "settlements"

    def __init__(self, table: MutableMapping[Any, Any]) -> None:
        super().__init__(table, load=Settlement.from_dict, key=lambda item: item.invoice_id)

    def put(self, value: Settlement) -> None:
        if value.status is SettlementStatus.REVERSED:
            # Written in the invoice's event, so to its partition of the changelog.
            self._table[value.settlement_id] = value.to_dict()
        latest = self.get(value.invoice_id)
        if latest is None or latest.settlement_round <= value.settlement_round:
            super().put(value)

    def of_round(self, invoice_id: str, settlement_round: int) -> Settlement | None:
        latest = self.get(invoice_id)
        if latest is not None and latest.settlement_round == settlement_round:
            return latest
        return self.get(settlement_id_for(invoice_id, settlement_round))


def declare(app: faust.App) -> SettlementTable:
    table = faust_table(
        app,
        SettlementTable.name,
        partitions=DOMAIN_EVENTS.partitions,
        help="Settlements by the invoice they settle (written by the settlement agent)",
    )
    return SettlementTable(table)
