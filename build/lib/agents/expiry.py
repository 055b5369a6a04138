"""The expiry timer: invoices past ``expires_at`` (plus a grace) are expired by command.

Every worker, every second, sweeps the open invoices of the partitions it owns
(app/services/expiry.py) and sends ``ExpireInvoice`` to the invoice agent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import faust

from app.services.expiry import ExpirySweep

NAME: Final = "expire_due_invoices"
EXPIRY_INTERVAL_SECONDS: Final = 1.0


def register(app: faust.App, sweep: ExpirySweep) -> None:
    async def expire_due_invoices() -> None:
        await sweep.sweep(datetime.now(UTC))

    app.timer(interval=EXPIRY_INTERVAL_SECONDS, name=f"{__name__}.{NAME}")(expire_due_invoices)
