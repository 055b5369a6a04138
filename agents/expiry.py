"""The expiry timer: invoices past ``expires_at`` (plus a grace) are expired by command.

Every worker scans only the open invoices of the partitions it owns (the ``open-invoices`` table
holds just pending and confirming ones) and sends ``ExpireInvoice`` to the invoice agent. The
command's id is fixed per invoice, so sending it twice expires once; the grace lets the chain
watcher read blocks up to ``expires_at`` first, so a payment the node was slow to show is not
flagged late.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from app.domain.commands import ExpireInvoice
from app.domain.invoice import Invoice
from app.faust_app import app, settings
from app.runtime.publishing import send_invoice_commands
from tables.invoices import invoices, open_invoices

logger = logging.getLogger(__name__)

EXPIRY_INTERVAL_SECONDS = 1.0
# Do not send the same invoice's expiry again within this many seconds while it is in flight.
RESEND_AFTER_SECONDS = 30.0

EXPIRIES_SENT = Counter("checkout_invoice_expiries_sent", "ExpireInvoice commands sent")

_sent_at: dict[str, float] = {}


@app.timer(interval=EXPIRY_INTERVAL_SECONDS)
async def expire_due_invoices() -> None:
    now = datetime.now(UTC)
    due = [
        ExpireInvoice.at(invoice_id, now)
        for invoice_id in due_invoice_ids(now - timedelta(seconds=settings.expiry_grace))
    ]
    if due:
        await send_invoice_commands(due)
        EXPIRIES_SENT.inc(len(due))


def due_invoice_ids(cutoff: datetime) -> list[str]:
    """Open invoices on this worker that ``ExpireInvoice`` would expire at ``cutoff``."""
    clock = time.monotonic()
    due = []
    for key, expires_at in list(open_invoices.items()):
        # Keys come back as the raw bytes they are stored as (tables/invoices.py).
        invoice_id = key.decode() if isinstance(key, bytes) else key
        if datetime.fromisoformat(expires_at) > cutoff:
            continue
        if clock - _sent_at.get(invoice_id, -RESEND_AFTER_SECONDS) < RESEND_AFTER_SECONDS:
            continue
        stored = invoices.get(invoice_id)
        if stored is None or not Invoice.from_dict(stored).expiry_due(cutoff):
            continue
        _sent_at[invoice_id] = clock
        due.append(invoice_id)
    for invoice_id in [known for known in _sent_at if known not in open_invoices]:
        del _sent_at[invoice_id]
    return due
