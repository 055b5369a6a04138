"""Notices: domain events become emails, Telegram messages and SMS to merchant users.

1. ``notice_fanout_agent`` reads ``crypto-checkout.domain-events`` and publishes one notice per
   user and channel that wants it on ``crypto-checkout.notifications`` (app/services/notices.py).
2. ``notice_intake_agent`` reads ``crypto-checkout.notifications``, takes the notices (the
   webhook deliveries there are ``delivery_intake_agent``'s) and queues them in PostgreSQL.
3. The notice dispatcher, one per worker, sends what is due with per-channel retries; a notice
   whose attempts ran out goes to ``crypto-checkout.notifications.dlq``.
The leader also publishes the daily summaries, and in polling mode runs the Telegram bot's
long polling (one poller per bot: Telegram refuses two).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, Final

import faust
from prometheus_client import Counter

from app.domain.notifications import NoticeMessage
from app.runtime.batches import apply_in_batch, batches, message_spans
from app.runtime.codecs import WEBHOOK_CHANNEL, decode_notice, encode_notice, notification_channel
from app.runtime.dead_letters import DeadLetter, DeadLetters
from app.runtime.retry import retry_transient
from app.services.notices import DailySummaries, NoticeDispatch, NoticeFanout, NoticeIntake

logger = logging.getLogger(__name__)

FANOUT: Final = "notice_fanout_agent"
INTAKE: Final = "notice_intake_agent"
DISPATCHER: Final = "notice_dispatcher"
BATCH_SIZE: Final = 500
BATCH_WINDOW: Final = 0.05

NOTICES_QUEUED = Counter(
    "checkout_notices_queued", "Notices queued for sending, by channel", ["channel"]
)
NOTICE_OUTCOMES = Counter(
    "checkout_notice_attempts",
    "Notice attempts by channel and outcome (sent, retrying, rejected, failed, skipped)",
    ["channel", "outcome"],
)


class NoticeGivenUp(Exception):
    """Every attempt of a notice failed; the dead letter keeps it."""


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


class NoticeDispatcherLoop:
    """Each worker's sender: wakes when notices are queued, and every ``poll_interval`` for the
    retries that came due; a failing database is waited out, never the end of the loop."""

    def __init__(self, dispatch: NoticeDispatch, *, poll_interval: float = 1.0) -> None:
        self._dispatch = dispatch
        self._poll_interval = poll_interval
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    async def run(self) -> None:
        while True:
            try:
                outcomes = await self._dispatch.dispatch_due()
            except Exception:  # the queue is in PostgreSQL: nothing is lost, try again
                logger.exception("notice dispatcher: a round failed; trying again")
                outcomes = []
                await asyncio.sleep(self._poll_interval)
            for outcome in outcomes:
                NOTICE_OUTCOMES.labels(str(outcome.channel), outcome.outcome).inc()
            if outcomes:
                continue  # there may be more due right now
            self._woken.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), timeout=self._poll_interval)


def dead_letter_notice(
    dead_letters: DeadLetters, notifications_topic: str
) -> Callable[[NoticeMessage, str], Awaitable[None]]:
    async def given_up(notice: NoticeMessage, error: str) -> None:
        await dead_letters.send_letter(
            DeadLetter(
                agent=DISPATCHER,
                error=NoticeGivenUp(
                    f"notice {notice.notice_id} by {notice.channel} to user {notice.user_id}"
                    f" failed every attempt; last: {error}"
                ),
                key=notice.key,
                value=encode_notice(notice),
                source_topic=notifications_topic,
            )
        )

    return given_up


class DailySummaryClock:
    """On the leader, once a day after ``hour`` UTC: yesterday's summaries. The notices' ids
    name the day, so a second run (a new leader, a restart) sends nothing twice."""

    def __init__(self, summaries: DailySummaries, hour: int) -> None:
        self._summaries = summaries
        self._hour = hour
        self._done: date | None = None

    async def tick(self, now: datetime) -> int:
        day = (now - timedelta(days=1)).date()
        if now.hour < self._hour or self._done == day:
            return 0
        sent = await self._summaries.send_for(day)
        self._done = day
        logger.info("daily summaries for %s: %d notices", day, sent)
        return sent


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
