"""Notices: domain events become emails, Telegram messages and SMS to merchant users.

1. ``notice_fanout_agent`` reads ``crypto-checkout.domain-events`` and publishes one notice per
   user and channel that wants it on ``crypto-checkout.notifications`` (app/services/notices.py).
2. ``notice_intake_agent`` reads ``crypto-checkout.notifications``, takes the notices (the
   webhook deliveries there are ``delivery_intake_agent``'s) and queues them in PostgreSQL.
3. The notice dispatcher, one per worker (app/runtime/notice_loops.py), sends what is due with
   per-channel retries; a notice whose attempts ran out goes to
   ``crypto-checkout.notifications.dlq``.
The leader also publishes the daily summaries, and in polling mode runs the Telegram bot's
long polling (one poller per bot: Telegram refuses two).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import faust

from app.runtime.batches import BatchFanOut, apply_in_batch, batches, message_spans
from app.runtime.codecs import WEBHOOK_CHANNEL, decode_notice, notification_channel
from app.runtime.dead_letters import DeadLetters
from app.runtime.notice_loops import DailySummaryClock
from app.runtime.retry import retry_transient
from app.services.notices import NoticeFanout, NoticeIntake

FANOUT: Final = "notice_fanout_agent"
INTAKE: Final = "notice_intake_agent"
BATCH_SIZE: Final = 500
BATCH_WINDOW: Final = 0.05


class NoticeAgents:
    def __init__(
        self, fanout: NoticeFanout, intake: NoticeIntake, dead_letters: DeadLetters
    ) -> None:
        self._fan_out = BatchFanOut(
            find=fanout.notices_for,
            publish=fanout.publish,
            dead_letters=dead_letters,
            agent=FANOUT,
            what="notice fan-out",
        )
        self._intake = intake
        self._dead_letters = dead_letters

    async def fan_out(self, event: faust.EventT) -> None:
        await self._fan_out.one(event)

    async def fan_out_batch(self, events: Sequence[faust.EventT]) -> None:
        """One notice per user and channel that wants each event, all published at once
        (app/runtime/batches.py: what goes to the dead-letter topic)."""
        await self._fan_out.batch(events)

    async def take_in(self, event: faust.EventT) -> None:
        try:
            notice = decode_notice(event.value)
            await retry_transient(lambda: self._intake.accept_batch([notice]), what="notice intake")
        except Exception as exc:
            await self._dead_letters.send(event, agent=INTAKE, error=exc)

    async def take_in_batch(self, events: Sequence[faust.EventT]) -> None:
        """Queue the notices among ``events`` (webhook deliveries are not ours) at once."""
        mine = [e for e in events if notification_channel(e.value) not in (WEBHOOK_CHANNEL, None)]
        if not mine:
            return
        with message_spans(mine, INTAKE) as spans:
            await apply_in_batch(
                mine,
                decode=lambda e: decode_notice(e.value).traced(spans.traceparent(e)),
                apply_all=self._intake.accept_batch,
                apply_one=self.take_in,
                dead_letters=self._dead_letters,
                agent=INTAKE,
                what="notice intake",
            )


def register(
    app: faust.App,
    domain_events: faust.TopicT,
    notifications: faust.TopicT,
    agents: NoticeAgents,
    hold: Callable[[], Awaitable[None]],
    daily: DailySummaryClock,
) -> None:
    async def notice_fanout_agent(stream: faust.StreamT[Any]) -> None:
        """Publishes a notice for every user and channel that wants one of the event."""
        async for events in batches(stream, BATCH_SIZE, BATCH_WINDOW):
            await hold()
            await agents.fan_out_batch(events)

    async def notice_intake_agent(stream: faust.StreamT[Any]) -> None:
        """Queues each notice in PostgreSQL for the notice dispatcher."""
        async for events in batches(stream, BATCH_SIZE, BATCH_WINDOW):
            await agents.take_in_batch(events)

    app.agent(domain_events, name=f"{__name__}.{FANOUT}", concurrency=1)(notice_fanout_agent)
    app.agent(notifications, name=f"{__name__}.{INTAKE}", concurrency=1)(notice_intake_agent)
    app.timer(interval=60.0, on_leader=True, name=f"{__name__}.daily_summaries")(daily.tick_now)


def register_polling(app: faust.App, poll_telegram: Callable[[], Awaitable[Any]]) -> None:
    """The Telegram bot's long polling on the leader only: Telegram refuses two pollers."""

    async def poll_telegram_updates() -> None:
        """One long poll; the timer's next tick follows at once."""
        await poll_telegram()

    app.timer(interval=0.05, on_leader=True, name=f"{__name__}.telegram_polling")(
        poll_telegram_updates
    )
