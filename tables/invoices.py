"""The invoice agent's tables: each invoice aggregate, and the invoices that can still expire.

Both are written only by the invoice agent (agents/invoices.py, through
app/services/invoice_commands.py) and partitioned like ``checkout.invoice-commands`` (by invoice
id). The merchant API reads ``invoices`` on the worker that owns the invoice; the expiry timer of
each worker scans its share of ``open-invoices``.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime
from typing import Any, Final

import faust

from app.domain.invoice import Invoice
from app.domain.statuses import InvoiceStatus
from app.runtime.topics import INVOICE_COMMANDS
from tables.typed import AggregateTable, faust_table

OPEN_STATUSES: Final = frozenset({InvoiceStatus.PENDING, InvoiceStatus.CONFIRMING})


def _text(key: bytes | str) -> str:
    # Keys come back as the raw bytes they are stored as.
    return key.decode() if isinstance(key, bytes) else key


class InvoiceTable(AggregateTable[Invoice]):
    """``invoices``: invoice id → ``Invoice.to_dict()``."""

    name: Final = "invoices"

    def __init__(self, table: MutableMapping[Any, Any]) -> None:
        super().__init__(table, load=Invoice.from_dict, key=lambda invoice: invoice.invoice_id)


class OpenInvoiceTable:
    """``open-invoices``: invoice id → ``expires_at`` (ISO 8601), pending and confirming only.

    What the expiry timer scans, so it never walks every invoice ever made.
    """

    name: Final = "open-invoices"

    def __init__(self, table: MutableMapping[Any, Any]) -> None:
        self._table = table

    def track(self, invoice: Invoice) -> None:
        """Keep ``invoice`` here exactly while it is open, with its current deadline (an
        extended invoice's moves)."""
        held = self._table.get(invoice.invoice_id)
        deadline = invoice.expires_at.isoformat()
        if invoice.status in OPEN_STATUSES and held != deadline:
            self._table[invoice.invoice_id] = deadline
        elif invoice.status not in OPEN_STATUSES and held is not None:
            del self._table[invoice.invoice_id]

    def open_invoices(self) -> list[tuple[str, datetime]]:
        return [
            (_text(key), datetime.fromisoformat(expires_at))
            for key, expires_at in list(self._table.items())
        ]


def declare(app: faust.App) -> tuple[InvoiceTable, OpenInvoiceTable]:
    partitions = INVOICE_COMMANDS.partitions
    invoices = faust_table(
        app,
        InvoiceTable.name,
        partitions=partitions,
        help="Invoice aggregates by invoice id (written by the invoice agent)",
    )
    open_invoices = faust_table(
        app,
        OpenInvoiceTable.name,
        partitions=partitions,
        help="Invoices that can still expire, with their expires_at (written by the invoice agent)",
    )
    return InvoiceTable(invoices), OpenInvoiceTable(open_invoices)
