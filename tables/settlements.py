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


class SettlementTable:
    """``settlements``: invoice id → ``Settlement.to_dict()`` (one settlement per paid invoice)."""

    name: Final = "settlements"

    def __init__(self, table: MutableMapping[Any, Any]) -> None:
        self._table = table

    def get(self, invoice_id: str) -> Settlement | None:
        stored = self._table.get(invoice_id)
        return None if stored is None else Settlement.from_dict(stored)

    def put(self, settlement: Settlement) -> None:
        self._table[settlement.invoice_id] = settlement.to_dict()


def declare(app: faust.App) -> SettlementTable:
    # Raw keys: the same bytes the producers send, so a key hashes to the same partition in the
    # source topic and in the changelog (table reads are routed by that hash).
    table = app.Table(
        SettlementTable.name,
        key_type=bytes,
        partitions=DOMAIN_EVENTS.partitions,
        help="Settlement aggregates by the id of the invoice they settle",
    )
    return SettlementTable(table)
