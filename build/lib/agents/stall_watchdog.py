"""The stall watchdog's timer: every worker checks its partitions every few seconds.

What it looks for, and what it does about it, is app/runtime/stall.py.
"""

from __future__ import annotations

from typing import Final

import faust

from app.runtime.stall import CHECK_EVERY_SECONDS, StallWatchdog

NAME: Final = "seek_stalled_partitions"


def register(app: faust.App, watchdog: StallWatchdog) -> None:
    async def seek_stalled_partitions() -> None:
        await watchdog.check()

    app.timer(interval=CHECK_EVERY_SECONDS, name=f"{__name__}.{NAME}")(seek_stalled_partitions)
