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

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

import faust
from prometheus_client import Counter

from app.domain.notifications import NoticeMessage
from app.runtime.batches import apply_in_batch, batches, message_spans
from app.runtime.codecs import WEBHOOK_CHANNEL, decode_notice, notification_channel
from app.runtime.dead_letters import DeadLetters
from app.runtime.notice_loops import DailySummaryClock
from app.runtime.retry import retry_transient
from app.services.notices import NoticeFanout, NoticeIntake

logger = logging.getLogger(__name__)

FANOUT: Final = "notice_fanout_agent"
INTAKE: Final = "notice_intake_agent"
BATCH_SIZE: Final = 500
BATCH_WINDOW: Final = 0.05

NOTICES_QUEUED = Counter(
    "checkout_notices_queued", "Notices queued for sending, by channel", ["channel"]
)


class NoticeAgents:
    def __init__(
        self, fanout: NoticeFanout, intake: NoticeIntake, dead_letters: DeadLetters
    ) -> None:
        self._fanout = fanout
        self._intake = intake
        self._dead_letters = dead_letters

    async def fan_out_batch(self, events: Sequence[faust.EventT]) -> None:
        """The notices of ``events``, published at once; an event that cannot be read or whose
        users cannot be looked up goes to the dead-letter topic and the others go on."""
        with message_spans(events, FANOUT) as spans:
            notices: list[NoticeMessage] = []
            for event in events:
                try:
                    found = await retry_transient(
                        partial(self._fanout.notices_for, event.value), what="notice fan-out"
                    )
                except Exception as exc:  # unreadable or refused: kept on the DLQ with its error
                    await self._dead_letters.send(event, agent=FANOUT, error=exc)
                    continue
                notices += [n.traced(spans.traceparent(event)) for n in found]
            if not notices:
                return
            try:
                await retry_transient(lambda: self._fanout.publish(notices), what="notice fan-out")
            except Exception:  # refused for good: find the event it belongs to
                for event in events:
                    await self.fan_out(event)

    async def fan_out(self, event: faust.EventT) -> None:
        """Fan out one event (the batch's way round an event it cannot publish with the rest)."""
        try:
            found = await retry_transient(
                partial(self._fanout.notices_for, event.value), what="notice fan-out"
            )
            if found:
                await retry_transient(lambda: self._fanout.publish(found), what="notice fan-out")
        except Exception as exc:  # unreadable or refused: kept on the DLQ with its error
            await self._dead_letters.send(event, agent=FANOUT, error=exc)

    async def take_in(self, event: faust.EventT) -> None:
        try:
            notice = decode_notice(event.value)
            queued = await retry_transient(
                lambda: self._intake.accept_batch([notice]), what="notice intake"
            )
            for new in queued:
                NOTICES_QUEUED.labels(str(new.channel)).inc()
        except Exception as exc:
            await self._dead_letters.send(event, agent=INTAKE, error=exc)

    async def take_in_batch(self, events: Sequence[faust.EventT]) -> None:
        """Queue the notices among ``events`` (webhook deliveries are not ours) at once."""
        mine = [e for e in events if notification_channel(e.value) not in (WEBHOOK_CHANNEL, None)]
        if not mine:
            return
        with message_spans(mine, INTAKE) as spans:

            async def accept(notices: list[NoticeMessage]) -> None:
                for notice in await self._intake.accept_batch(notices):
                    NOTICES_QUEUED.labels(str(notice.channel)).inc()

            await apply_in_batch(
                mine,
                decode=lambda e: decode_notice(e.value).traced(spans.traceparent(e)),
                apply_all=accept,
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

    async def send_daily_summaries() -> None:
        try:
            await daily.tick(datetime.now(UTC))
        except Exception:  # the next tick tries again; the ids keep it from doubling
            logger.exception("daily summaries failed; the next tick tries again")

    app.agent(domain_events, name=f"{__name__}.{FANOUT}", concurrency=1)(notice_fanout_agent)
    app.agent(notifications, name=f"{__name__}.{INTAKE}", concurrency=1)(notice_intake_agent)
    app.timer(interval=60.0, on_leader=True, name=f"{__name__}.daily_summaries")(
        send_daily_summaries
    )


def register_polling(app: faust.App, poll_telegram: Callable[[], Awaitable[Any]]) -> None:
    """The Telegram bot's long polling on the leader only: Telegram refuses two pollers."""

    async def poll_telegram_updates() -> None:
        """One long poll; the timer's next tick follows at once."""
        await poll_telegram()

    app.timer(interval=0.05, on_leader=True, name=f"{__name__}.telegram_polling")(
        poll_telegram_updates
    )
