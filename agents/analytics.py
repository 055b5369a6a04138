"""The analytics timer: each day's figures on ``crypto-checkout.analytics``, in batch.

Only Faust's leader (one worker of the group) publishes, every ``ANALYTICS_INTERVAL`` seconds
(app/services/analytics.py). A failed snapshot is logged and counted, and the next interval
tries again: the figures are read from the read models, so nothing is lost by waiting.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Final

import faust
from prometheus_client import Counter

from app.services.analytics import AnalyticsPublication

logger = logging.getLogger(__name__)

NAME: Final = "publish_analytics"
FAILURES = Counter(
    "checkout_analytics_publication_failures",
    "Snapshots of the day's figures that could not be read or published (retried next interval)",
)


def register(app: faust.App, publication: AnalyticsPublication, interval: float) -> None:
    async def publish_analytics() -> None:
        try:
            await publication.publish(datetime.now(UTC))
        except Exception:  # not money: the next interval publishes the same figures, and more
            FAILURES.inc()
            logger.exception("analytics snapshot not published; trying again in %.0f s", interval)

    app.timer(interval=interval, on_leader=True, name=f"{__name__}.{NAME}")(publish_analytics)
