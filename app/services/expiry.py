"""Expire the invoices past ``expires_at`` (plus a grace): the expiry timer's use case.

Every worker scans only the open invoices of the partitions it owns (the expiry index holds just
pending and confirming ones) and sends ``ExpireInvoice`` to the invoice agent. The command's id
is fixed per invoice, so sending it twice expires once. An invoice whose expiry is in flight is
not sent again for ``resend_after`` seconds.

Expiry waits for the chain: an invoice expires only once every deposits partition has processed
a block produced after its ``expires_at`` (``ChainProgress.chain_time``), and the wall clock is
past ``expires_at`` plus the grace. A payment made in time is in such a block or an earlier one,
and the payment agent tells the invoice about it before it notes the head: so a watcher, node or
worker that lags only delays the expiry, never turns an on-time payment into a late one.
Meanwhile the payment page says the network is being checked (web/templates/pay.html).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from prometheus_client import Counter, Gauge

from app.domain.commands import ExpireInvoice
from app.services.ports import ChainProgress, ExpiryIndex, InvoiceCommandSender, InvoiceStore

EXPIRIES_SENT = Counter("checkout_invoice_expiries_sent", "ExpireInvoice commands sent")
WAITING_FOR_CHAIN = Gauge(
    "checkout_invoice_expiries_waiting_for_chain",
    "Invoices of this worker past expires_at + grace whose expiry waits for the chain to be "
    "processed past expires_at",
)
CHAIN_TIME_LAG = Gauge(
    "checkout_expiry_chain_time_lag_seconds",
    "Wall clock minus the block time every deposits partition has processed (-1: unknown)",
)

logger = logging.getLogger(__name__)


class ExpirySweep:
    def __init__(
        self,
        expiries: ExpiryIndex,
        invoices: InvoiceStore,
        commands: InvoiceCommandSender,
        chain: ChainProgress,
        *,
        grace: timedelta,
        resend_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._expiries = expiries
        self._invoices = invoices
        self._commands = commands
        self._chain = chain
        self._grace = grace
        self._resend_after = resend_after
        self._clock = clock
        self._sent_at: dict[str, float] = {}

    async def sweep(self, now: datetime) -> list[str]:
        """Send ``ExpireInvoice`` for every open invoice due at ``now``; the ids sent."""
        chain_time = await self._chain_time()
        CHAIN_TIME_LAG.set(-1 if chain_time is None else (now - chain_time).total_seconds())
        due = self.due_invoice_ids(now - self._grace, chain_time)
        if due:
            commands = []
            for invoice_id in due:
                invoice = self._invoices.get(invoice_id)
                if invoice is None:
                    commands.append(ExpireInvoice.at(invoice_id, now))
                else:
                    commands.append(
                        ExpireInvoice.at(invoice_id, now, invoice.extensions, invoice.reopenings)
                    )
            await self._commands.send_invoice_commands(commands)
            EXPIRIES_SENT.inc(len(due))
        return due

    async def _chain_time(self) -> datetime | None:
        try:
            return await self._chain.chain_time()
        except Exception:  # unknown: nothing expires this second, the safe direction
            logger.warning("cannot read the chain progress; no invoice expires", exc_info=True)
            return None

    def due_invoice_ids(self, cutoff: datetime, chain_time: datetime | None) -> list[str]:
        """Open invoices on this worker that ``ExpireInvoice`` would expire at ``cutoff``, and
        whose ``expires_at`` every deposits partition has processed the chain past."""
        clock = self._clock()
        open_now = self._expiries.open_invoices()
        due = []
        waiting = 0
        for invoice_id, expires_at in open_now:
            if expires_at > cutoff:
                continue
            if chain_time is None or chain_time <= expires_at:
                waiting += 1
                continue
            if clock - self._sent_at.get(invoice_id, -self._resend_after) < self._resend_after:
                continue
            invoice = self._invoices.get(invoice_id)
            if invoice is None or not invoice.expiry_due(cutoff):
                continue
            self._sent_at[invoice_id] = clock
            due.append(invoice_id)
        WAITING_FOR_CHAIN.set(waiting)
        still_open = {invoice_id for invoice_id, _ in open_now}
        for invoice_id in [known for known in self._sent_at if known not in still_open]:
            del self._sent_at[invoice_id]
        return due
