"""The event store's upkeep on the leader: this month's partition and the next ones made ahead,
and the figures that watch them and PostgreSQL's WAL archiver (app/services/event_store_upkeep.py).

Idempotent: a tick finds the months made and only reads the figures. A failed tick is logged and
counted; nothing is lost meanwhile (an event without its month's partition waits in the default
partition), and the next tick, a minute later, tries again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Final

import faust

from app.services.event_store_upkeep import UPKEEP_FAILURES, EventStoreUpkeep

logger = logging.getLogger(__name__)

NAME: Final = "keep_event_store_months"


def register(app: faust.App, upkeep: EventStoreUpkeep, interval: float) -> None:
    async def keep_event_store_months() -> None:
        try:
            await upkeep.run(datetime.now(UTC))
        except Exception as exc:  # housekeeping: the next tick tries again
            UPKEEP_FAILURES.labels(type(exc).__name__).inc()
            logger.exception("event store upkeep: run failed; the next run tries again")

    app.timer(interval=interval, on_leader=True, name=f"{__name__}.{NAME}")(keep_event_store_months)
