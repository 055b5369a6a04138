"""``checkout notices retry``: send failed notices again (docs/notifications.md).

A notice fails for good when its channel's retry schedule runs out (about a day for email, half
an hour for Telegram and SMS) while the provider stays down. Once it works again, the operator
queues them again from their first attempt: each worker's dispatcher sends them at its next look.
The notice keeps its id, so nothing already sent goes twice.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Final

import click

from app.adapters.postgres.audit_log import PostgresAuditLog
from app.adapters.postgres.notices import PostgresNotices
from app.domain.notifications import Channel
from app.runtime.cli_support import (
    TIME_FORMATS,
    as_utc,
    database,
    json_option,
    operator_entry,
    print_json,
)
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

    return notices


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
