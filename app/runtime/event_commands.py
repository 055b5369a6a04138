"""``checkout events replay``: domain events from the PostgreSQL event store back onto Kafka, or
into fresh read models.

The event store keeps every domain event ever published (Kafka keeps 7 days). Replaying sends
the chosen events, in their original order (``seq``), byte for byte as first published and with
their aggregate id as key, to ``crypto-checkout.domain-events`` (every consumer deduplicates on
``event_id``, so the platform's own agents change nothing) or to another existing topic — e.g.
one an integrator created to rebuild their copy without disturbing anyone. Each record carries
the header ``checkout-replay: event-store``. ``--read-models`` rebuilds the query side from the
store instead (the same as ``checkout rebuild-read-models``).
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, Final

import click
import pydantic

from app.adapters.kafka.operations import KafkaOperations
from app.adapters.postgres.audit_log import PostgresAuditLog
from app.adapters.postgres.event_partitions import PostgresEventStoreMonths
from app.adapters.postgres.event_store_reader import EventFilter, EventStoreReader
from app.domain.events import parse_event
from app.runtime.cli_support import (
    TIME_FORMATS,
    as_utc,
    database,
    json_option,
    operator_entry,
    print_json,
    refuse,
)
from app.runtime.event_month_commands import add_month_commands
from app.runtime.topics import ALL_TOPICS, DOMAIN_EVENTS, topic_name
from app.settings import Settings

BATCH: Final = 1_000
MAX_EVENTS: Final = 5_000_000
REPLAY_HEADER: Final = ("checkout-replay", b"event-store")

RebuildReadModels = Callable[[Settings, str | None, int], Coroutine[Any, Any, None]]


def events_group(settings: Settings, rebuild_read_models: RebuildReadModels) -> click.Group:
    @click.group(name="events")
    def events() -> None:
        """The event store: every domain event ever published (docs/events.md)."""

    @events.command(name="replay")
    @click.option(
        "--to-topic",
        default=None,
        help="Where to (default: crypto-checkout.domain-events); another topic must exist.",
    )
    @click.option("--read-models", is_flag=True, help="Rebuild the read models instead.")
    @click.option("--only", default=None, help="With --read-models: which (comma-separated).")
    @click.option("--from-seq", type=click.IntRange(0), default=0, help="After this seq.")
    @click.option("--since", type=click.DateTime(TIME_FORMATS), default=None, help="Occurred from.")
    @click.option(
        "--until", type=click.DateTime(TIME_FORMATS), default=None, help="Occurred before."
    )
    @click.option("--event-type", "event_types", multiple=True, help="Only this type (repeatable).")
    @click.option("--aggregate", default=None, help="Only this aggregate (an invoice id, …).")
    @click.option("--merchant", default=None, help="Only this merchant's events.")
    @click.option("--all", "everything", is_flag=True, help="Every event (no filter).")
    @click.option("--limit", type=click.IntRange(1, MAX_EVENTS), default=100_000, show_default=True)
    @click.option("--dry-run", is_flag=True, help="Count what would be sent; send nothing.")
    @json_option
    def replay(
        to_topic: str | None,
        read_models: bool,
        only: str | None,
        from_seq: int,
        since: datetime | None,
        until: datetime | None,
        event_types: tuple[str, ...],
        aggregate: str | None,
        merchant: str | None,
        everything: bool,
        limit: int,
        dry_run: bool,
        as_json: bool,
    ) -> None:
        """Send stored domain events to a topic in their original order (or --read-models)."""
        chosen = EventFilter(
            after_seq=from_seq,
            since=as_utc(since),
            until=as_utc(until),
            event_types=event_types,
            aggregate_id=aggregate,
            merchant_id=merchant,
        )
        if read_models:
            if to_topic is not None or chosen != EventFilter() or everything:
                refuse("events replay", "--read-models replays every event: give no filter")
            asyncio.run(rebuild_read_models(settings, only, BATCH))
            return
        if chosen == EventFilter() and not everything:
            refuse(
                "events replay",
                "choose events (--since, --from-seq, --event-type, --aggregate, --merchant) "
                "or say --all",
            )
        asyncio.run(_replay(settings, to_topic, chosen, limit, dry_run, as_json))

    add_month_commands(events, settings)
    return events


def _target(settings: Settings, to_topic: str | None, existing: list[str]) -> str:
    default = topic_name(DOMAIN_EVENTS, settings.topic_namespace)
    if to_topic is None or to_topic == default:
        return default
    ours = {topic_name(spec, settings.topic_namespace) for spec in ALL_TOPICS}
    if to_topic in ours or to_topic.startswith(f"{settings.app_id}-"):
        refuse(
            "events replay",
            f"{to_topic} is not a topic of domain events: replay to {default} or to a topic "
            "of your own",
        )
    if to_topic not in existing:
        refuse(
            "events replay",
            f"no topic {to_topic[:200]}: create it first (the brokers create no topic on use)",
        )
    return to_topic


async def _replay(
    settings: Settings,
    to_topic: str | None,
    chosen: EventFilter,
    limit: int,
    dry_run: bool,
    as_json: bool,
) -> None:
    command = "events replay"
    counts: Counter[str] = Counter()
    first_seq = last_seq = None
    async with (
        database(settings, maxsize=1) as pool,
        KafkaOperations(settings.kafka_bootstrap_servers) as kafka,
    ):
        target = _target(settings, to_topic, await kafka.topics())
        reader = EventStoreReader(pool)
        after = chosen.after_seq
        sent = 0
        while sent < limit:
            batch = await reader.batch(chosen, after, min(BATCH, limit - sent))
            if not batch:
                break
            records = []
            for stored in batch:
                try:
                    event = parse_event(stored.payload)
                except pydantic.ValidationError as exc:
                    refuse(
                        command,
                        f"event seq {stored.seq} cannot be read ({exc.error_count()} errors): "
                        "nothing after it was sent; fix or skip it with --from-seq",
                    )
                records.append(
                    (
                        stored.aggregate_id.encode(),
                        event.model_dump_json().encode(),
                        [REPLAY_HEADER],
                    )
                )
                counts[event.event_type] += 1
            if not dry_run:
                await kafka.produce(target, records)
            first_seq = batch[0].seq if first_seq is None else first_seq
            last_seq = batch[-1].seq
            after = last_seq
            sent += len(batch)
            print(
                f"{'counted' if dry_run else 'sent'} {sent} events (through seq {last_seq})",
                file=sys.stderr,
            )
        archived_away = await PostgresEventStoreMonths(pool).months_archived_away()
        if not dry_run:
            await PostgresAuditLog(pool).append(
                operator_entry(
                    command, "ok", target_id=target, details={"events": sent, "through": last_seq}
                )
            )
    body = {
        "topic": target,
        "dry_run": dry_run,
        "events": sent,
        "first_seq": first_seq,
        "last_seq": last_seq,
        "more": sent >= limit,
        "by_type": dict(sorted(counts.items())),
        # Not in the store, so not replayed (checkout events restore brings them back).
        "archived_months": [f"{month:%Y-%m}" for month in archived_away],
    }
    if as_json:
        print_json(body)
    else:
        _print_replay(body, counts)


def _print_replay(body: dict[str, Any], counts: Counter[str]) -> None:
    verb = "would send" if body["dry_run"] else "sent"
    print(
        f"{verb} {body['events']} events to {body['topic']}"
        f" (seq {body['first_seq']}..{body['last_seq']})"
    )
    for event_type, count in sorted(counts.items()):
        print(f"  {count:>8}  {event_type}")
    if body["more"]:
        print(f"stopped at --limit; go on with --from-seq {body['last_seq']}")
    if body["archived_months"]:
        print(f"not replayed, archived: {', '.join(body['archived_months'])}")
