"""The block producer: an asyncio task sealing the pending pool into a block every interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tron_sim.chain import Chain

log = logging.getLogger("tron_sim.producer")


class BlockProducer:
    """Produces a block every `interval` seconds unless paused; interval 0 means manual mode
    (blocks only on /sim/mine)."""

    def __init__(self, chain: Chain, interval: float, paused: bool = False) -> None:
        self.chain = chain
        self.interval = interval
        self.paused = paused
        self._task: asyncio.Task[None] | None = None

    @property
    def manual(self) -> bool:
        return self.interval <= 0

    def start(self) -> None:
        if not self.manual and self._task is None:
            self._task = asyncio.create_task(self._run(), name="tron-sim-block-producer")
            self._task.add_done_callback(_report_crash)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_due = loop.time() + self.interval
        while True:
            await asyncio.sleep(max(0.0, next_due - loop.time()))
            next_due += self.interval
            if next_due < loop.time():  # fell behind (suspended machine): do not burst
                next_due = loop.time() + self.interval
            if not self.paused:
                self.chain.produce_block()


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "block production stopped: %r; restart the simulator",
            task.exception(),
            exc_info=task.exception(),
        )
