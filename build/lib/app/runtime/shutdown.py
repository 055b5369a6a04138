"""Keep a stopping worker from acknowledging what it could not really process.

When a Faust worker stops, it waits for the messages its agents are working on, then closes the
tables — but an agent may still take messages already buffered for it and run them against
closed tables, where every key reads as missing. A transfer would then look like one to an
unknown address, be acknowledged and committed, and the payment would be lost. So an agent
checks before and after each message: once the tables are stopping, it holds the message
unacknowledged until Faust cancels the agent. The worker that takes the partition over
processes it again, which is harmless because every handler is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the types only: this module does not need Faust to run
    import faust

logger = logging.getLogger(__name__)


class ShutdownHold:
    """``await hold()`` never returns once the worker's tables are stopping."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    def stopping(self) -> bool:
        return bool(self._app.tables.should_stop)

    async def __call__(self) -> None:
        """Faust's cancellation of the agent ends the wait."""
        if self.stopping():
            logger.warning(
                "tables are stopping: holding the message for the next owner of its partition"
            )
            await asyncio.get_running_loop().create_future()


async def never_stopping() -> None:
    """The hold of code that runs outside a worker (tests, tools): nothing ever stops."""
