"""The notice dispatcher's loop and the daily summaries' clock (agents/notices.py wires them).

Both run beside the agents, outside any stream: the dispatcher on every worker (it sends what
PostgreSQL holds as due), the clock on the leader's timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Final

from prometheus_client import Counter

from app.domain.notifications import NoticeMessage
from app.runtime.codecs import encode_notice
from app.runtime.dead_letters import DeadLetter, DeadLetters
from app.services.notices import DailySummaries, NoticeDispatch

logger = logging.getLogger(__name__)

DISPATCHER: Final = "notice_dispatcher"

NOTICE_OUTCOMES = Counter(
    "checkout_notice_attempts",
    "Notice attempts by channel and outcome (sent, retrying, rejected, failed, skipped)",
    ["channel", "outcome"],
)


class NoticeGivenUp(Exception):
    """Every attempt of a notice failed; the dead letter keeps it."""


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

    async def tick_now(self) -> None:
        """The leader's timer: a failure is logged and the next tick tries again (the ids keep
        it from doubling)."""
        try:
            await self.tick(datetime.now(UTC))
        except Exception:
            logger.exception("daily summaries failed; the next tick tries again")
