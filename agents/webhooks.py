"""Webhooks: domain events become signed deliveries to merchants' endpoints.

Three steps, each restartable on its own:

1. ``webhook_agent`` reads ``crypto-checkout.domain-events`` and publishes one notification per
   endpoint that wants the event (app/services/webhook_fanout.py), a batch of events at a time.
2. ``delivery_intake_agent`` reads ``crypto-checkout.notifications`` and queues the deliveries
   in PostgreSQL, a batch of notifications in one statement.
3. The dispatcher, one per worker (app/adapters/webhooks/dispatcher.py), makes the attempts with
   retries on their own clock; what it reports goes through agents/webhook_dispatcher.py.

With tracing on, each event and each notification of a batch has a span of its own (its
message's trace), and what it leads to carries that span's ``traceparent``: the notification's
Kafka header, then the delivery's row, so the dispatcher's attempt joins the invoice's trace.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import faust

from app.runtime.batches import BatchFanOut, apply_in_batch, batches, message_spans
from app.runtime.codecs import WEBHOOK_CHANNEL, decode_notification, notification_channel
from app.runtime.dead_letters import DeadLetters
from app.runtime.retry import retry_transient
from app.services.webhook_fanout import DeliveryIntake, WebhookFanout

FANOUT: Final = "webhook_agent"
INTAKE: Final = "delivery_intake_agent"
# Both agents take what has arrived in batches: a block of payments brings hundreds of events,
# and one produce-and-wait or one INSERT for all of them costs a fraction of one each. The
# window is what a batch may add to a webhook's latency; the offsets of a batch are
# acknowledged only after all of it is published or queued.
BATCH_SIZE: Final = 500
BATCH_WINDOW: Final = 0.05


class WebhookAgents:
    def __init__(
        self, fanout: WebhookFanout, intake: DeliveryIntake, dead_letters: DeadLetters
    ) -> None:
        self._fan_out = BatchFanOut(
            find=fanout.notifications_for,
            publish=fanout.publish,
            dead_letters=dead_letters,
            agent=FANOUT,
            what="webhook fan-out",
        )
        self._intake = intake
        self._dead_letters = dead_letters

    async def fan_out(self, event: faust.EventT) -> None:
        await self._fan_out.one(event)

    async def fan_out_batch(self, events: Sequence[faust.EventT]) -> None:
        """One notification per endpoint that wants each event, all published at once, in order
        (app/runtime/batches.py: what goes to the dead-letter topic)."""
        await self._fan_out.batch(events)

    async def take_in(self, event: faust.EventT, traceparent: str | None = None) -> None:
        try:
            notification = decode_notification(event.value).traced(traceparent)
            await retry_transient(
                lambda: self._intake.accept(notification), what="webhook delivery intake"
            )
        except Exception as exc:
            await self._dead_letters.send(event, agent=INTAKE, error=exc)

    async def take_in_batch(self, events: Sequence[faust.EventT]) -> None:
        """Queue the deliveries of ``events`` in one statement; one by one if it is refused.

        The topic also carries notices to merchant users (agents/notices.py takes those); what
        names no channel is read as a webhook delivery, as before channels were named."""
        mine = [e for e in events if notification_channel(e.value) in (WEBHOOK_CHANNEL, None)]
        if not mine:
            return
        with message_spans(mine, INTAKE) as spans:
            await apply_in_batch(
                mine,
                decode=lambda e: decode_notification(e.value).traced(spans.traceparent(e)),
                apply_all=self._intake.accept_batch,
                apply_one=lambda e: self.take_in(e, spans.traceparent(e)),
                dead_letters=self._dead_letters,
                agent=INTAKE,
                what="webhook delivery intake",
            )


def register(
    app: faust.App,
    domain_events: faust.TopicT,
    notifications: faust.TopicT,
    agents: WebhookAgents,
    hold: Callable[[], Awaitable[None]],
) -> None:
    async def webhook_agent(stream: faust.StreamT[Any]) -> None:
        """Publishes a notification for every webhook endpoint that wants the event."""
        async for events in batches(stream, BATCH_SIZE, BATCH_WINDOW):
            await hold()
            await agents.fan_out_batch(events)

    async def delivery_intake_agent(stream: faust.StreamT[Any]) -> None:
        """Queues each webhook delivery in PostgreSQL for the dispatcher."""
        async for events in batches(stream, BATCH_SIZE, BATCH_WINDOW):
            await agents.take_in_batch(events)

    app.agent(domain_events, name=f"{__name__}.{FANOUT}", concurrency=1)(webhook_agent)
    app.agent(notifications, name=f"{__name__}.{INTAKE}", concurrency=1)(delivery_intake_agent)
