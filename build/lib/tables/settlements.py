"""The settlement agent's table, partitioned like the domain events (by invoice id).

Written only by the settlement agent (agents/settlements.py, through app/services/settlement.py);
the merchant API reads it on the worker that owns the invoice.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Final

import faust

from app.domain.settlement import Settlement
from app.runtime.topics import DOMAIN_EVENTS
from tables.typed import AggregateTable, faust_table


class SettlementTable(AggregateTable[Settlement]):
    """``settlements``: invoice id → ``Settlement.to_dict()`` (one settlement per paid invoice)."""

    name: Final = "settlements"

    def __init__(self, table: MutableMapping[Any, Any]) -> None:
        super().__init__(table, load=Settlement.from_dict, key=lambda item: item.invoice_id)


def declare(app: faust.App) -> SettlementTable:
    table = faust_table(
        app,
        SettlementTable.name,
        partitions=DOMAIN_EVENTS.partitions,
        help="Settlements by the invoice they settle (written by the settlement agent)",
    )
    return SettlementTable(table)
