"""Expire the invoices past ``expires_at`` (plus a grace): the expiry timer's use case.

Every worker scans only the open invoices of the partitions it owns (the expiry index holds just
pending and confirming ones) and sends ``ExpireInvoice`` to the invoice agent. The command's id
is fixed per invoice, so sending it twice expires once; the grace lets the chain watcher read
blocks up to ``expires_at`` first, so a payment the node was slow to show is not flagged late.
An invoice whose expiry is in flight is not sent again for ``resend_after`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from prometheus_client import Counter

from app.domain.commands import ExpireInvoice
from app.services.ports import ExpiryIndex, InvoiceCommandSender, InvoiceStore

EXPIRIES_SENT = Counter("checkout_invoice_expiries_sent", "ExpireInvoice commands sent")


class ExpirySweep:
    def __init__(
        self,
        expiries: ExpiryIndex,
        invoices: InvoiceStore,
        commands: InvoiceCommandSender,
        *,
        grace: timedelta,
        resend_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._expiries = expiries
        self._invoices = invoices
        self._commands = commands
        self._grace = grace
        self._resend_after = resend_after
        self._clock = clock
        self._sent_at: dict[str, float] = {}

    async def sweep(self, now: datetime) -> list[str]:
        """Send ``ExpireInvoice`` for every open invoice due at ``now``; the ids sent."""
        cutoff = now - self._grace
        due = self.due_invoice_ids(cutoff)
        if due:
            commands = []
            for invoice_id in due:
                invoice = self._invoices.get(invoice_id)
                extensions = invoice.extensions if invoice is not None else 0
                commands.append(ExpireInvoice.at(invoice_id, now, extensions))
            await self._commands.send_invoice_commands(commands)
            EXPIRIES_SENT.inc(len(due))
        return due

    def due_invoice_ids(self, cutoff: datetime) -> list[str]:
        """Open invoices on this worker that ``ExpireInvoice`` would expire at ``cutoff``."""
        clock = self._clock()
        open_now = self._expiries.open_invoices()
        due = []
        for invoice_id, expires_at in open_now:
            if expires_at > cutoff:
                continue
            if clock - self._sent_at.get(invoice_id, -self._resend_after) < self._resend_after:
                continue
            invoice = self._invoices.get(invoice_id)
            if invoice is None or not invoice.expiry_due(cutoff):
                continue
            self._sent_at[invoice_id] = clock
            due.append(invoice_id)
        still_open = {invoice_id for invoice_id, _ in open_now}
        for invoice_id in [known for known in self._sent_at if known not in still_open]:
            del self._sent_at[invoice_id]
        return due
