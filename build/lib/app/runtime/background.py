"""Run a plain object's ``start`` / ``run`` / ``stop`` as a service of the worker.

Faust starts the services added with ``app.add_dependency`` before the agents and stops them
after; this wraps anything with those coroutines (the webhook dispatcher, the stall watchdog's
client) so that it needs to know nothing of ``mode``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mode import Service

logger = logging.getLogger(__name__)

Step = Callable[[], Awaitable[None]]


class Background(Service):
    def __init__(
        self,
        name: str,
        *,
        start: Step | None = None,
        run: Step | None = None,
        stop: Step | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._name = name
        self._start = start
        self._run = run
        self._stop = stop
        self._running: asyncio.Future[None] | None = None
        self._crashing: asyncio.Future[None] | None = None

    @property
    def label(self) -> str:
        return self._name

    async def on_start(self) -> None:
        if self._start is not None:
            await self._start()
        if self._run is not None:
            self._running = asyncio.ensure_future(self._run())
            self._running.add_done_callback(self._ended)

    def _ended(self, running: asyncio.Future[None]) -> None:
        """A loop that ends by itself is a crash: the worker stops, to be restarted, rather than
        run on without (webhooks would silently stop on this worker)."""
        if running.cancelled() or self.should_stop:
            return
        error = running.exception() or RuntimeError(f"{self._name} returned")
        logger.error("%s stopped: %r; crashing the worker", self._name, error)
        self._crashing = asyncio.ensure_future(self.crash(error))

    async def on_stop(self) -> None:
        # The loop first (it may still use what ``stop`` closes), then ``stop``.
        if self._running is not None:
            self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)
            self._running = None
        if self._stop is not None:
            await self._stop()
