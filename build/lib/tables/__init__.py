"""The Faust tables of a worker, each with typed values and its one writer.

| table | key → value | written by |
|---|---|---|
| ``invoices`` | invoice id → invoice aggregate | invoice agent |
| ``open-invoices`` | invoice id → expires_at | invoice agent |
| ``deposits`` | deposit address → deposit account | payment agent |
| ``confirmation-watch`` | partition → last chain head, addresses counting | payment agent |
| ``settlements`` | invoice id → settlement aggregate | settlement agent |

Each class wraps any ``MutableMapping``: the Faust table in a worker (``declare_tables``), a dict
in the component tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from tables import deposits, invoices, settlements
from tables.deposits import ConfirmationWatchTable, DepositTable
from tables.invoices import InvoiceTable, OpenInvoiceTable
from tables.settlements import SettlementTable


@dataclass(frozen=True)
class Tables:
    invoices: InvoiceTable
    open_invoices: OpenInvoiceTable
    deposits: DepositTable
    confirmation_watch: ConfirmationWatchTable
    settlements: SettlementTable

    @classmethod
    def in_memory(cls) -> Tables:
        """The same tables over plain dicts (tests, tools)."""
        return cls(
            InvoiceTable({}),
            OpenInvoiceTable({}),
            DepositTable({}),
            ConfirmationWatchTable({}),
            SettlementTable({}),
        )


def declare_tables(app: faust.App) -> Tables:
    invoice_table, open_invoices = invoices.declare(app)
    deposit_table, watch = deposits.declare(app)
    return Tables(invoice_table, open_invoices, deposit_table, watch, settlements.declare(app))
