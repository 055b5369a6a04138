"""``checkout notices retry | daily-summary``: failed notices again, a day's summaries again
(docs/notifications.md).

A notice fails for good when its channel's retry schedule runs out (about a day for email, half
an hour for Telegram and SMS) while the provider stays down. Once it works again, the operator
queues them again from their first attempt: each worker's dispatcher sends them at its next look.
The notice keeps its id, so nothing already sent goes twice.

``daily-summary --date D`` publishes the day's summaries as the leader does after
``DAILY_SUMMARY_HOUR``: for a day the leader missed, or to check the figures. The notices' ids
name the day, so users who had theirs already are not sent it twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date, datetime
from typing import Final

import click

from app.adapters.kafka.operations import KafkaOperations
from app.adapters.postgres.audit_log import PostgresAuditLog
from app.adapters.postgres.notices import PostgresNotices
from app.adapters.postgres.reports import PostgresReports
from app.domain.notifications import Channel, NoticeMessage
from app.runtime.cli_support import (
    TIME_FORMATS,
    as_utc,
    database,
    json_option,
    operator_entry,
    print_json,
)
from app.runtime.codecs import encode_notice
from app.runtime.topics import NOTIFICATIONS, topic_name
from app.services.notices import DailySummaries, NoticeFanout
from app.settings import Settings

MAX_RETRY: Final = 50_000


def notices_group(settings: Settings) -> click.Group:
    @click.group(name="notices")
    def notices() -> None:
        """Notices to merchant users by email, Telegram and SMS (docs/notifications.md)."""

    @notices.command(name="retry")
    @click.option(
        "--since",
        type=click.DateTime(TIME_FORMATS),
        required=True,
        help="Notices created since (UTC unless an offset is given).",
    )
    @click.option("--until", type=click.DateTime(TIME_FORMATS), default=None, help="…and before.")
    @click.option("--channel", type=click.Choice([c.value for c in Channel]), default=None)
    @click.option("--limit", type=click.IntRange(1, MAX_RETRY), default=10_000, show_default=True)
    @click.option("--dry-run", is_flag=True, help="Say what would be retried; change nothing.")
    @json_option
    def retry(
        since: datetime,
        until: datetime | None,
        channel: str | None,
        limit: int,
        dry_run: bool,
        as_json: bool,
    ) -> None:
        """Queue failed notices again from their first attempt."""
        asyncio.run(
            _retry(settings, as_utc(since), as_utc(until), channel, limit, dry_run, as_json)
        )

    @notices.command(name="daily-summary")
    @click.option(
        "--date", "day", type=click.DateTime(["%Y-%m-%d"]), required=True, help="The UTC day."
    )
    @click.option("--dry-run", is_flag=True, help="Say who would be told; publish nothing.")
    @json_option
    def daily_summary(day: datetime, dry_run: bool, as_json: bool) -> None:
        """Publish a day's summaries to the users who chose them (once per user and channel)."""
        asyncio.run(_daily_summary(settings, day.date(), dry_run, as_json))

    return notices


class _KafkaNotices:
    """``NoticePublisher`` for a command: one producer, the records in order."""

    def __init__(self, kafka: KafkaOperations, topic: str) -> None:
        self._kafka = kafka
        self._topic = topic

    async def publish_notices(self, notices: Sequence[NoticeMessage]) -> None:
        await self._kafka.produce(
            self._topic, [(n.key.encode(), encode_notice(n), []) for n in notices]
        )


async def _daily_summary(settings: Settings, day: date, dry_run: bool, as_json: bool) -> None:
    async with (
        database(settings, maxsize=2) as pool,
        KafkaOperations(settings.kafka_bootstrap_servers) as kafka,
    ):
        store = PostgresNotices(pool, settings.app_id)
        fanout = NoticeFanout(
            store,
            _KafkaNotices(kafka, topic_name(NOTIFICATIONS, settings.topic_namespace)),
            sms_enabled=settings.sms_provider != "none",
        )
        summaries = DailySummaries(store, PostgresReports(pool), fanout)
        messages = await summaries.for_day(day)
        if not dry_run and messages:
            await fanout.publish(messages)
            await PostgresAuditLog(pool).append(
                operator_entry(
                    "notices daily-summary",
                    "ok",
                    target_id=day.isoformat(),
                    details={"published": len(messages)},
                )
            )
    told = [
        {
            "notice_id": m.notice_id,
            "user_id": m.user_id,
            "merchant_id": m.about.merchant_id,
            "channel": str(m.channel),
            "facts": dict(m.about.facts),
        }
        for m in messages
    ]
    if as_json:
        print_json({"dry_run": dry_run, "date": day.isoformat(), "notices": told})
        return
    verb = "would publish" if dry_run else "published"
    for item in told:
        print(f"{verb} {item['channel']} summary to {item['user_id']} ({item['merchant_id']})")
    print(f"{len(told)} daily summaries for {day.isoformat()} {verb}")


async def _retry(
    settings: Settings,
    since: datetime | None,
    until: datetime | None,
    channel: str | None,
    limit: int,
    dry_run: bool,
    as_json: bool,
) -> None:
    assert since is not None  # required
    async with database(settings, maxsize=2) as pool:
        retried = await PostgresNotices(pool, settings.app_id).retry_failed(
            since=since, until=until, channel=channel, limit=limit, dry_run=dry_run
        )
        if retried and not dry_run:
            await PostgresAuditLog(pool).append(
                operator_entry(
                    "notices retry",
                    "ok",
                    target_id=f"since {since.isoformat()}",
                    details={"queued": len(retried), "channel": channel},
                )
            )
    if as_json:
        print_json({"dry_run": dry_run, "queued": retried, "more": len(retried) >= limit})
        return
    verb = "would queue" if dry_run else "queued"
    for row in retried:
        print(f"{verb} {row['notice_id']} ({row['channel']} {row['notice']} to {row['user_id']})")
    print(f"{len(retried)} notices {verb}")
