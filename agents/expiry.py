"""The expiry timer: invoices past ``expires_at`` (plus a grace) are expired by command.

Every worker, every second, stores how far its deposits partitions have processed the chain
(noted by the payment agent) and sweeps the open invoices of the partitions it owns
(app/services/expiry.py): those the chain has been processed past are sent ``ExpireInvoice``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import faust

from app.services.expiry import ExpirySweep
from app.services.ports import ChainProgress

NAME: Final = "expire_due_invoices"
EXPIRY_INTERVAL_SECONDS: Final = 1.0


def register(app: faust.App, sweep: ExpirySweep, progress: ChainProgress) -> None:
    async def expire_due_invoices() -> None:
        await progress.flush()
        await sweep.sweep(datetime.now(UTC))

    app.timer(interval=EXPIRY_INTERVAL_SECONDS, name=f"{__name__}.{NAME}")(expire_due_invoices)
