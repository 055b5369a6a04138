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

from app.faust_app import app

logger = logging.getLogger(__name__)


def tables_stopping() -> bool:
    return bool(app.tables.should_stop)


async def hold_if_stopping() -> None:
    """Never return once the tables are stopping; Faust's cancellation ends the wait."""
    if tables_stopping():
        logger.warning(
            "tables are stopping: holding the message for the next owner of its partition"
        )
        await asyncio.get_running_loop().create_future()
