"""``checkout events partitions|archive|restore``: the event store's months (docs/operations.md,
"The event store's lifecycle").

``partitions`` makes the months the leader's timer would (this one and the next
``EVENT_STORE_MONTHS_AHEAD``) and shows every month with its events and size, the default
partition, and the months archived. ``archive`` moves whole months older than the retention
(``EVENT_STORE_RETENTION_MONTHS``, 24 by default) into encrypted files and drops them from
PostgreSQL; ``restore`` brings one back. Both are audited, and both refuse rather than guess.
"""

from __future__ import annotations

import asyncio
import functools
import getpass
import os
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import click

from app.adapters.postgres.audit_log import PostgresAuditLog
from app.adapters.postgres.event_archive import (
    ArchiveError,
    ArchiveResult,
    archive_month,
    restore_month,
)
from app.adapters.postgres.event_partitions import PostgresEventStoreMonths
from app.runtime.cli_support import database, json_option, operator_entry, print_json, refuse, table
from app.services.event_store_upkeep import (
    add_months,
    archivable,
    months_covered_ahead,
    oldest_kept_month,
)
from app.settings import Settings

_LOCAL: Final = Path(__file__).resolve().parents[2] / ".local"
_MONTH: Final = re.compile(r"^(\d{4})-(\d{2})$")


def _month(_ctx: Any, _param: Any, raw: str | None) -> date | None:
    if raw is None:
        return None
    found = _MONTH.match(raw)
    if not found or not 1 <= int(found[2]) <= 12 or int(found[1]) < 2000:
        raise click.BadParameter(f"{raw[:40]!r} is not a month like 2025-01")
    return date(int(found[1]), int(found[2]), 1)


def _backup_dir() -> Path:
    return Path(os.environ.get("BACKUP_DIR") or _LOCAL / "backups")


def _key_file() -> Path:
    return Path(os.environ.get("BACKUP_ENCRYPTION_KEY_FILE") or _backup_dir() / "backup.key")


key_option = click.option(
    "--key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The backups' key (default: $BACKUP_ENCRYPTION_KEY_FILE, else .local/backups/backup.key).",
)


def add_month_commands(events: click.Group, settings: Settings) -> None:
    @events.command(name="partitions")
    @json_option
    def partitions(as_json: bool) -> None:
        """Make the months ahead that are missing; list every month, the default partition and
        the archived months."""
        body = asyncio.run(_partitions(settings))
        if as_json:
            print_json(body)
            return
        for name in body["made"]:
            print(f"made {name}")
        table(
            ("partition", "month", "events (est.)", "MiB"),
            [
                (p["name"], p["month"] or "-", p["events"], f"{p['bytes'] / 2**20:.1f}")
                for p in body["partitions"]
            ],
            numeric=(2, 3),
        )
        print(f"months ahead: {body['months_ahead']}; default partition: {body['default_rows']}")
        for archived in body["archived"]:
            state = "restored" if archived["restored_at"] else "archived"
            print(f"{archived['month']}  {state}  {archived['events']} events  {archived['file']}")

    @events.command(name="archive")
    @click.option("--month", callback=_month, default=None, help="The month (YYYY-MM).")
    @click.option("--expired", is_flag=True, help="Every month older than the retention.")
    @click.option(
        "--to",
        "directory",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Where the files go (default: $BACKUP_DIR/events).",
    )
    @key_option
    @click.option("--yes", is_flag=True, help="Yes: drop the months from PostgreSQL.")
    @json_option
    def archive(
        month: date | None,
        expired: bool,
        directory: Path | None,
        key_file: Path | None,
        yes: bool,
        as_json: bool,
    ) -> None:
        """Move whole months older than the retention into encrypted files, then drop them."""
        command = "events archive"
        if (month is None) == (not expired):
            refuse(command, "name a --month or say --expired")
        if not yes:
            refuse(command, "archiving drops the months' events from PostgreSQL: add --yes")
        today = datetime.now(UTC).date()
        retention = settings.event_store_retention_months
        if month is not None and not archivable(month, today, retention):
            refuse(
                command,
                f"{month:%Y-%m} is within the retention of {retention} months "
                f"(EVENT_STORE_RETENTION_MONTHS): the newest month to archive is "
                f"{add_months(oldest_kept_month(today, retention), -1):%Y-%m}",
            )
        target = directory or _backup_dir() / "events"
        key = key_file or _key_file()
        results = asyncio.run(_archive(settings, month, today, target, key, retention))
        _answer(results, "archived", as_json)

    @events.command(name="restore")
    @click.option("--month", callback=_month, required=True, help="The month (YYYY-MM).")
    @click.option(
        "--file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="The archive file (default: where it was archived to).",
    )
    @key_option
    @json_option
    def restore(month: date, file: Path | None, key_file: Path | None, as_json: bool) -> None:
        """Bring an archived month back into the event store."""
        result = asyncio.run(_restore(settings, month, file, key_file or _key_file()))
        _answer([result], "restored", as_json)


async def _partitions(settings: Settings) -> dict[str, Any]:
    async with database(settings, maxsize=1) as pool:
        months = PostgresEventStoreMonths(pool)
        made = await months.add_ahead(settings.event_store_months_ahead)
        if made:
            await PostgresAuditLog(pool).append(
                operator_entry("events partitions", "ok", details={"made": made})
            )
        partitions = await months.partitions()
        archived = await months.archives()
    today = datetime.now(UTC).date()
    return {
        "made": made,
        "partitions": [
            {
                "name": p.name,
                "month": None if p.month is None else f"{p.month:%Y-%m}",
                "events": p.events,
                "bytes": p.bytes,
            }
            for p in partitions
        ],
        "months_ahead": months_covered_ahead([p.month for p in partitions if p.month], today),
        # partitions() counted the default partition exactly.
        "default_rows": sum(p.events for p in partitions if p.month is None),
        "archived": [
            {
                "month": f"{a.month:%Y-%m}",
                "file": a.file,
                "events": a.events,
                "sha256": a.sha256,
                "archived_at": a.archived_at.isoformat(),
                "restored_at": None if a.restored_at is None else a.restored_at.isoformat(),
            }
            for a in archived
        ],
    }


async def _archive(
    settings: Settings,
    month: date | None,
    today: date,
    directory: Path,
    key_file: Path,
    retention: int,
) -> list[ArchiveResult]:
    async with database(settings, maxsize=1) as pool:
        audit = PostgresAuditLog(pool)
        if month is None:
            present = await PostgresEventStoreMonths(pool).partitioned_months()
            chosen = [m for m in present if archivable(m, today, retention)]
        else:
            chosen = [month]
        results: list[ArchiveResult] = []
        for each in chosen:
            work = functools.partial(
                archive_month,
                settings.database_url,
                each,
                directory,
                key_file,
                f"cli:{getpass.getuser()}",
            )
            results.append(await _audited(audit, "events archive", each, work))
    return results


async def _restore(settings: Settings, month: date, file: Path | None, key: Path) -> ArchiveResult:
    async with database(settings, maxsize=1) as pool:
        work = functools.partial(restore_month, settings.database_url, month, key, file)
        return await _audited(PostgresAuditLog(pool), "events restore", month, work)


async def _audited(
    audit: PostgresAuditLog, command: str, month: date, work: Callable[[], ArchiveResult]
) -> ArchiveResult:
    """Run ``work`` (blocking: psycopg2 and openssl) off the loop; audit it, done or refused."""
    try:
        result = await asyncio.to_thread(work)
    except ArchiveError as exc:
        await audit.append(
            operator_entry(
                command, "refused", target_id=f"{month:%Y-%m}", details={"error": str(exc)}
            )
        )
        refuse(command, exc)
    await audit.append(
        operator_entry(command, "ok", target_id=f"{month:%Y-%m}", details=_details(result))
    )
    return result


def _details(result: ArchiveResult) -> dict[str, Any]:
    return {
        "month": f"{result.month:%Y-%m}",
        "file": str(result.file),
        "sha256": result.sha256,
        "events": result.events,
        "first_seq": result.first_seq,
        "last_seq": result.last_seq,
        "bytes": result.bytes,
    }


def _answer(results: list[ArchiveResult], verb: str, as_json: bool) -> None:
    if as_json:
        print_json({verb: [_details(result) for result in results]})
        return
    if not results:
        print(f"nothing {verb}: no month is older than the retention")
    for r in results:
        seqs = "" if r.first_seq is None else f" (seq {r.first_seq}..{r.last_seq})"
        print(f"{verb} {r.month:%Y-%m}: {r.events} events{seqs}, {r.file}, sha256 {r.sha256}")
