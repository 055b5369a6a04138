"""Sweeps on the leader: the sweeper's tick (app/services/sweeps.py) every ``SWEEP_INTERVAL``.

One worker at a time (Faust's leader) starts and follows sweeps; everything it knows is in
PostgreSQL, so a new leader carries on. The signer's answers are recorded by the money-out
answers agent (agents/money_out.py) into the same table the sweeper reads.
"""

from __future__ import annotations

import logging
from typing import Final

import faust
from prometheus_client import Counter

from app.services.sweeps import Sweeper

logger = logging.getLogger(__name__)

SWEEPER: Final = "sweep_deposit_addresses"
TICK_FAILURES = Counter(
    "checkout_sweep_tick_failures",
    "Ticks of the sweeper that failed before the end (the next tick starts again)",
    ["error"],
)


def register(app: faust.App, sweeper: Sweeper, interval: float) -> None:
    async def sweep_deposit_addresses() -> None:
        try:
            await sweeper.tick()
        except Exception as exc:  # the state is in PostgreSQL: the next tick starts from there
            TICK_FAILURES.labels(type(exc).__name__).inc()
            logger.exception("sweep tick failed; the next tick carries on")

    app.timer(interval=interval, on_leader=True, name=f"{__name__}.{SWEEPER}")(
        sweep_deposit_addresses
    )
