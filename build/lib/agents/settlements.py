"""The settlement agent: each ``InvoicePaid`` on the domain events becomes a booked settlement.

app/services/settlement.py creates the invoice's one settlement, books it in the PostgreSQL
ledger exactly once and completes it; the ``settlements`` table holds it, keyed by invoice id on
the invoice's own partition. Every other event is passed over.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import faust

from app.domain.events import parse_event
from app.runtime.dead_letters import DeadLetters
from app.runtime.pipelining import AckPipeline
from app.runtime.retry import retry_transient
from app.services.settlement import Settling

NAME: Final = "settlement_agent"


class SettlementAgent:
    def __init__(self, settling: Settling, dead_letters: DeadLetters) -> None:
        self._settling = settling
        self._dead_letters = dead_letters

    async def handle(self, event: faust.EventT) -> None:
        try:
            command = self._settling.command_for(parse_event(event.value))
            if command is not None:
                await retry_transient(lambda: self._settling.settle(command), what="settlement")
        except Exception as exc:  # a refused or unreadable event: kept with its error
            await self._dead_letters.send(event, agent=NAME, error=exc)


def register(
    app: faust.App,
    topic: faust.TopicT,
    agent: SettlementAgent,
    hold: Callable[[], Awaitable[None]],
) -> faust.types.AgentT:
    async def settlement_agent(stream: faust.StreamT[Any]) -> None:
        """Settles each paid invoice: fee and net, booked once in the ledger."""
        # Decided one by one; each acknowledged once its events are.
        await AckPipeline(stream, NAME, agent.handle, hold=hold).run()

    return app.agent(topic, name=f"{__name__}.{NAME}", concurrency=1)(settlement_agent)
