"""The chain watcher on the leader worker: Tron blocks in, deposit-address activity out.

Faust elects one leader among the workers; only it polls the node (app/adapters/tron/watcher.py),
so blocks are read once and in order. The cursor lives in PostgreSQL, so a new leader resumes
where the old one stopped. Only transfers to our deposit addresses are published, not all of
Tron's USDT traffic: transfers and orphans keyed by the receiving address (landing on the
partition that owns that address's invoice), chain heads to every partition.

A watcher that refuses to start at the head (no cursor, but its platform watched before:
app/adapters/tron/starts.py) reads and publishes nothing, chain heads included, until an operator
runs ``checkout chain start``: payments already detected wait for their confirmations meanwhile,
and heads computed without reading the blocks could confirm a payment a reorg has removed. The
worker runs on; ``readiness`` reports it on the operators' /readyz.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

import faust
from prometheus_client import Counter

from app.adapters.tron.errors import (
    NodeUnavailable,
    TokenContractMismatch,
    WatcherRefusesToStart,
)
from app.adapters.tron.watcher import ChainWatcher
from app.runtime.retry import transient_error

logger = logging.getLogger(__name__)

NAME: Final = "watch_chain"

POLL_FAILURES = Counter(
    "checkout_chain_watcher_poll_failures",
    "Polls of the chain watcher that failed (the next poll resumes from the stored cursor)",
    ["error"],
)


class ChainWatching:
    """The leader's polls: ``make_watcher`` builds a watcher that reads its cursor afresh."""

    def __init__(self, make_watcher: Callable[[], ChainWatcher], poll_interval: float) -> None:
        self._make_watcher = make_watcher
        self._watcher: ChainWatcher | None = None
        self._last_tick = 0.0
        self._refusing: str | None = None
        self._unreachable_since: float | None = None  # PostgreSQL or Kafka down, since when
        self._stale_after = 5 * poll_interval + 5

    async def _ready_watcher(self) -> ChainWatcher:
        now = time.monotonic()
        if now - self._last_tick > self._stale_after:
            # The timer did not run for a while: leadership was elsewhere and another worker moved
            # the cursor. Start from what the store says, not from this worker's old memory.
            self._watcher = None
        self._last_tick = now
        if self._watcher is None:
            watcher = self._make_watcher()
            await watcher.check_token()
            self._watcher = watcher
        return self._watcher

    def readiness(self) -> dict[str, object]:
        """``chain_watcher`` of the operators' detailed /readyz: down while it refuses to start.

        An advisory (web/health.py), never deciding the worker's readiness: the API still works,
        and no other worker would do better, the refusal is the platform's.
        """
        if self._refusing is None or time.monotonic() - self._last_tick > self._stale_after:
            return {"status": "up"}  # not refusing, or no longer the leader
        return {"status": "down", "error": self._refusing}

    async def poll(self) -> None:
        try:
            watcher = await self._ready_watcher()
            await watcher.poll()
            self._refusing = None
        except WatcherRefusesToStart as exc:
            # The watcher logged what to do (once a minute); it asks again at every poll.
            self._refusing = str(exc)
            POLL_FAILURES.labels(error=type(exc).__name__).inc()
        except TokenContractMismatch as exc:
            # Watching the wrong contract would miss every payment: refuse loudly, every tick.
            POLL_FAILURES.labels(error=type(exc).__name__).inc()
            logger.critical("chain watcher refuses to start: %s", exc)
        except NodeUnavailable as exc:
            POLL_FAILURES.labels(error=type(exc).__name__).inc()
            logger.warning("chain watcher: %s; next poll resumes from the stored cursor", exc)
        except Exception as exc:
            # Nothing is lost: the cursor only moves after Kafka acknowledged a block's findings.
            POLL_FAILURES.labels(error=type(exc).__name__).inc()
            if transient_error(exc) is None:
                logger.exception(
                    "chain watcher poll failed; next poll resumes from the stored cursor"
                )
            elif self._unreachable_since is None:  # one line per outage, not a traceback per poll
                self._unreachable_since = time.monotonic()
                logger.warning("chain watcher: %r; polling on from the stored cursor", exc)
            return
        if self._unreachable_since is not None:
            logger.info(
                "chain watcher: polls succeed again after %.1f s",
                time.monotonic() - self._unreachable_since,
            )
            self._unreachable_since = None


def register(app: faust.App, watching: ChainWatching, interval: float) -> None:
    async def watch_chain() -> None:
        await watching.poll()

    app.timer(interval=interval, on_leader=True, name=f"{__name__}.{NAME}")(watch_chain)
