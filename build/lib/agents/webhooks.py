"""Webhooks: domain events become signed deliveries to merchants' endpoints.

Three steps, each restartable on its own:

1. ``webhook_agent`` reads ``crypto-checkout.domain-events`` and publishes one notification per
   endpoint that wants the event (app/services/webhook_fanout.py).
2. ``delivery_intake_agent`` reads ``crypto-checkout.notifications`` and queues each delivery in
   PostgreSQL.
3. The dispatcher, one per worker (app/adapters/webhooks/dispatcher.py), makes the attempts with
   retries on their own clock; what it reports goes through agents/webhook_dispatcher.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import faust

from app.runtime.codecs import decode_notification
from app.runtime.dead_letters import DeadLetters
from app.runtime.retry import retry_transient
from app.services.webhook_fanout import DeliveryIntake, WebhookFanout

FANOUT: Final = "webhook_agent"
INTAKE: Final = "delivery_intake_agent"


class WebhookAgents:
    def __init__(
        self, fanout: WebhookFanout, intake: DeliveryIntake, dead_letters: DeadLetters
    ) -> None:
        self._fanout = fanout
        self._intake = intake
        self._dead_letters = dead_letters

    async def fan_out(self, event: faust.EventT) -> None:
        raw = event.value
        try:
            await retry_transient(lambda: self._fanout.fan_out(raw), what="webhook fan-out")
        except Exception as exc:  # unreadable or refused: kept on the DLQ with its error
            await self._dead_letters.send(event, agent=FANOUT, error=exc)

    async def take_in(self, event: faust.EventT) -> None:
        try:
            notification = decode_notification(event.value)
            await retry_transient(
                lambda: self._intake.accept(notification), what="webhook delivery intake"
            )
        except Exception as exc:
            await self._dead_letters.send(event, agent=INTAKE, error=exc)


def register(
    app: faust.App,
    domain_events: faust.TopicT,
    notifications: faust.TopicT,
    agents: WebhookAgents,
    hold: Callable[[], Awaitable[None]],
) -> None:
    async def webhook_agent(stream: faust.StreamT[Any]) -> None:
        """Publishes a notification for every webhook endpoint that wants the event."""
        async for event in stream.events():
            await hold()
            await agents.fan_out(event)

    async def delivery_intake_agent(stream: faust.StreamT[Any]) -> None:
        """Queues each webhook delivery in PostgreSQL for the dispatcher."""
        async for event in stream.events():
            await agents.take_in(event)

    app.agent(domain_events, name=f"{__name__}.{FANOUT}", concurrency=1)(webhook_agent)
    app.agent(notifications, name=f"{__name__}.{INTAKE}", concurrency=1)(delivery_intake_agent)
