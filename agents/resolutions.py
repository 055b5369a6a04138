"""The resolution agent: an underpaid invoice resolved by a refund gets its refund.

For each ``InvoiceResolved`` with ``action: refund`` on the domain events, the refund of
everything the invoice received is recorded (app/services/money_out.py ``refund_received``),
once per invoice however often the event is delivered; the money-out driver sends it. Every
other event is passed over.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import faust

from app.domain.events import InvoiceResolved, parse_event
from app.runtime.dead_letters import DeadLetters
from app.runtime.pipelining import AckPipeline
from app.runtime.retry import retry_transient
from app.services.money_out import MoneyOutRequests

NAME: Final = "resolution_agent"


class ResolutionAgent:
    def __init__(self, money_out: MoneyOutRequests, dead_letters: DeadLetters) -> None:
        self._money_out = money_out
        self._dead_letters = dead_letters

    async def handle(self, event: faust.EventT) -> None:
        try:
            resolved = parse_event(event.value)
            if not isinstance(resolved, InvoiceResolved) or resolved.data.action != "refund":
                return
            data = resolved.data
            if data.refund_id is None or data.refund_address is None or not data.refund_amount:
                raise ValueError(f"{resolved.event_id}: a refund resolution without its refund")
            refund_id, address, amount = data.refund_id, data.refund_address, data.refund_amount

            async def record() -> None:
                await self._money_out.refund_received(
                    resolved.merchant_id,
                    resolved.aggregate_id,
                    refund_id=refund_id,
                    amount=amount,
                    address=address,
                    at=resolved.occurred_at,
                )

            await retry_transient(record, what="resolution refund")
        except Exception as exc:  # a refused or unreadable event: kept with its error
            await self._dead_letters.send(event, agent=NAME, error=exc)


def register(
    app: faust.App,
    topic: faust.TopicT,
    agent: ResolutionAgent,
    hold: Callable[[], Awaitable[None]],
) -> faust.types.AgentT:
    async def resolution_agent(stream: faust.StreamT[Any]) -> None:
        """Records the refund of each underpaid invoice resolved by a refund."""
        await AckPipeline(stream, NAME, agent.handle, hold=hold).run()

    return app.agent(topic, name=f"{__name__}.{NAME}", concurrency=1)(resolution_agent)
