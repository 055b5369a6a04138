"""``checkout dlq list|show|replay|purge``: the dead-letter topics (docs/operations.md).

A dead letter is a message an agent could not process, kept on ``<topic>.dlq`` with its error
(app/runtime/dead_letters.py). Once the cause is fixed, ``replay`` produces the message back to
its source topic with its original key (so the same partition, the same agent instance) and
headers, plus ``checkout-replay-of: <dlq topic>:<partition>:<offset>``; the agents are
idempotent, so it is applied once however often it arrives. Each replay is recorded in
PostgreSQL after Kafka acknowledged it: a letter replayed already is refused unless ``--force``,
and ``purge --replayed`` deletes only letters that went back.

Letters are named ``<dlq topic>:<partition>:<offset>`` (``dlq list`` shows them), and chosen by
id, by an offset range, by error class, or all of one topic. Failed webhook deliveries (on
``crypto-checkout.notifications.dlq``) are retried with ``checkout webhooks retry`` instead.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import click
from aiokafka import TopicPartition

from app.adapters.kafka.operations import KafkaOperations, Record
from app.adapters.postgres.audit_log import PostgresAuditLog
from app.adapters.postgres.dead_letter_replays import PostgresDeadLetterReplays, Replayed
from app.runtime.cli_support import database, json_option, operator_entry, print_json, refuse, table
from app.runtime.dead_letters import StoredLetter, UnreadableLetter, read_letter
from app.runtime.topics import ALL_TOPICS, NOTIFICATIONS, TopicSpec, topic_name
from app.settings import Settings

# A dead-letter topic is read whole for each command: this many records at most.
MAX_LETTERS: Final = 100_000
DLQ_SUFFIX: Final = ".dlq"


@dataclass(frozen=True)
class Unreadable:
    record: Record
    reason: str


def dlq_group(settings: Settings) -> click.Group:
    topic_option = click.option(
        "--topic",
        "source",
        default=None,
        help="The source topic (e.g. checkout.invoice-commands); default: every dead-letter topic.",
    )

    @click.group(name="dlq")
    def dlq() -> None:
        """Dead letters: list, show, replay to their topic, purge."""

    @dlq.command(name="list")
    @topic_option
    @click.option("--error-type", default=None, help="Only letters of this exception class.")
    @click.option("--limit", type=click.IntRange(1, MAX_LETTERS), default=200, show_default=True)
    @json_option
    def list_(source: str | None, error_type: str | None, limit: int, as_json: bool) -> None:
        """Dead letters, oldest first per topic and partition, with whether each was replayed."""
        asyncio.run(_list(settings, source, error_type, limit, as_json))

    @dlq.command(name="show")
    @click.argument("letter_id")
    @json_option
    def show(letter_id: str, as_json: bool) -> None:
        """One dead letter in full: error, traceback, source, key, value and headers."""
        asyncio.run(_show(settings, letter_id, as_json))

    @dlq.command(name="replay")
    @topic_option
    @click.option("--id", "ids", multiple=True, help="A letter id (repeatable).")
    @click.option("--partition", type=click.IntRange(0), default=None, help="With an offset range.")
    @click.option("--from-offset", type=click.IntRange(0), default=None, help="First offset.")
    @click.option("--to-offset", type=click.IntRange(0), default=None, help="Last offset.")
    @click.option("--error-type", default=None, help="Every letter of this exception class.")
    @click.option("--all", "everything", is_flag=True, help="Every letter of --topic.")
    @click.option("--force", is_flag=True, help="Replay letters replayed before, again.")
    @click.option("--dry-run", is_flag=True, help="Say what would be replayed; send nothing.")
    @json_option
    def replay(
        source: str | None,
        ids: tuple[str, ...],
        partition: int | None,
        from_offset: int | None,
        to_offset: int | None,
        error_type: str | None,
        everything: bool,
        force: bool,
        dry_run: bool,
        as_json: bool,
    ) -> None:
        """Produce dead letters back to their source topic (original key and headers plus a
        replay marker); each is applied once. Exit 1 when nothing could be replayed."""
        choice = _Choice(ids, partition, from_offset, to_offset, error_type, everything)
        ok = asyncio.run(_replay(settings, source, choice, force, dry_run, as_json))
        raise SystemExit(0 if ok else 1)

    @dlq.command(name="purge")
    @click.option(
        "--topic", "source", required=True, help="The source topic, e.g. checkout.invoice-commands."
    )
    @click.option("--replayed", is_flag=True, help="Delete letters up to the first not replayed.")
    @click.option("--all", "everything", is_flag=True, help="Delete every letter (with --yes).")
    @click.option("--yes", is_flag=True, help="Confirm --all.")
    @json_option
    def purge(source: str, replayed: bool, everything: bool, yes: bool, as_json: bool) -> None:
        """Delete dead letters from a dead-letter topic (Kafka DeleteRecords, per partition)."""
        if replayed == everything:
            refuse("dlq purge", "give exactly one of --replayed and --all")
        if everything and not yes:
            refuse("dlq purge", "--all deletes letters never replayed: add --yes to confirm")
        asyncio.run(_purge(settings, source, everything, as_json))

    return dlq


# --- choosing topics and letters ----------------------------------------------------------------


def _dead_letter_specs(command: str, source: str | None) -> list[TopicSpec]:
    sources = [spec for spec in ALL_TOPICS if not spec.name.endswith(DLQ_SUFFIX)]
    if source is None:
        return sources
    named = [spec for spec in sources if spec.name == source.removesuffix(DLQ_SUFFIX)]
    if not named:
        refuse(
            command,
            f"no dead-letter topic for {source[:100]!r}; the topics are: "
            + ", ".join(spec.name for spec in sources),
        )
    return named


def _dlq_name(settings: Settings, spec: TopicSpec) -> str:
    return topic_name(spec, settings.topic_namespace) + DLQ_SUFFIX


async def _letters(
    kafka: KafkaOperations, dlq_topic: str
) -> tuple[list[StoredLetter], list[Unreadable]]:
    letters, unreadable = [], []
    for record in await kafka.read_topic(dlq_topic, limit=MAX_LETTERS):
        try:
            letters.append(read_letter(dlq_topic, record.partition, record.offset, record.value))
        except UnreadableLetter as exc:
            unreadable.append(Unreadable(record, str(exc)))
    return letters, unreadable


@dataclass(frozen=True)
class _Choice:
    ids: tuple[str, ...]
    partition: int | None
    from_offset: int | None
    to_offset: int | None
    error_type: str | None
    everything: bool

    def check(self, source: str | None) -> None:
        ranged = self.from_offset is not None or self.to_offset is not None
        ways = sum((bool(self.ids), ranged, self.error_type is not None, self.everything))
        if ways != 1:
            refuse(
                "dlq replay",
                "choose the letters one way: --id, --from-offset/--to-offset, --error-type "
                "or --all",
            )
        if self.partition is not None and not ranged:
            refuse("dlq replay", "--partition goes with --from-offset/--to-offset")
        if (ranged or self.everything) and source is None:
            refuse("dlq replay", "an offset range and --all need --topic")
        if ranged and (self.from_offset or 0) > (
            self.to_offset if self.to_offset is not None else 2**63
        ):
            refuse("dlq replay", "--from-offset is above --to-offset")

    def wants(self, letter: StoredLetter) -> bool:
        if self.ids:
            return letter.letter_id in self.ids
        if self.error_type is not None:
            return letter.error_type == self.error_type
        if self.everything:
            return True
        low = self.from_offset or 0
        high = self.to_offset if self.to_offset is not None else 2**63
        in_partition = self.partition is None or letter.partition == self.partition
        return in_partition and low <= letter.offset <= high


def _id_topics(settings: Settings, ids: Sequence[str]) -> list[TopicSpec]:
    """The source topics of the letters named by id (``<dlq topic>:<partition>:<offset>``)."""
    by_dlq = {_dlq_name(settings, spec): spec for spec in _dead_letter_specs("dlq", None)}
    chosen: list[TopicSpec] = []
    for letter_id in ids:
        spec = by_dlq.get(letter_id.rsplit(":", 2)[0])
        if spec is None or not _well_formed_id(letter_id):
            refuse(
                "dlq",
                f"{letter_id[:120]!r} is not a letter id of this platform "
                "(<dlq topic>:<partition>:<offset>, as `checkout dlq list` shows them)",
            )
        if spec not in chosen:
            chosen.append(spec)
    return chosen


def _well_formed_id(letter_id: str) -> bool:
    parts = letter_id.rsplit(":", 2)
    return len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit()


# --- the commands -------------------------------------------------------------------------------


async def _list(
    settings: Settings, source: str | None, error_type: str | None, limit: int, as_json: bool
) -> None:
    specs = _dead_letter_specs("dlq list", source)
    rows: list[dict[str, Any]] = []
    async with (
        database(settings, maxsize=1) as pool,
        KafkaOperations(settings.kafka_bootstrap_servers) as kafka,
    ):
        replays = PostgresDeadLetterReplays(pool)
        for spec in specs:
            dlq_topic = _dlq_name(settings, spec)
            letters, unreadable = await _letters(kafka, dlq_topic)
            replayed = await replays.replayed(dlq_topic)
            for letter in letters:
                if error_type is None or letter.error_type == error_type:
                    rows.append(
                        _summary(letter, replayed.get((letter.partition, letter.offset), 0))
                    )
            for bad in unreadable:
                rows.append(
                    {
                        "id": f"{dlq_topic}:{bad.record.partition}:{bad.record.offset}",
                        "unreadable": bad.reason,
                    }
                )
    shown = rows[:limit]
    if as_json:
        print_json({"letters": shown, "total": len(rows), "shown": len(shown)})
        return
    table(
        ("id", "agent", "error", "failed at", "source", "replayed"),
        [
            (
                row["id"],
                row.get("agent", "?"),
                row.get("error_type", "unreadable"),
                row.get("failed_at", "")[:19],
                row.get("source", ""),
                row.get("replays", "") or "",
            )
            for row in shown
        ],
    )
    print(f"{len(rows)} dead letters" + (f", {len(shown)} shown" if len(shown) < len(rows) else ""))


def _summary(letter: StoredLetter, replays: int) -> dict[str, Any]:
    return {
        "id": letter.letter_id,
        "agent": letter.agent,
        "error_type": letter.error_type,
        "error_code": letter.error_code,
        "error": letter.error[:300],
        "failed_at": letter.failed_at,
        "source": f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}",
        "replays": replays,
    }


async def _show(settings: Settings, letter_id: str, as_json: bool) -> None:
    specs = _id_topics(settings, [letter_id])
    async with (
        database(settings, maxsize=1) as pool,
        KafkaOperations(settings.kafka_bootstrap_servers) as kafka,
    ):
        dlq_topic = _dlq_name(settings, specs[0])
        letters, unreadable = await _letters(kafka, dlq_topic)
        replayed = await PostgresDeadLetterReplays(pool).replayed(dlq_topic)
    for bad in unreadable:
        if f"{dlq_topic}:{bad.record.partition}:{bad.record.offset}" == letter_id:
            refuse("dlq show", bad.reason)
    letter = next((each for each in letters if each.letter_id == letter_id), None)
    if letter is None:
        refuse("dlq show", f"no dead letter {letter_id[:120]} (deleted by retention or a purge?)")
    body = {
        **_summary(letter, replayed.get((letter.partition, letter.offset), 0)),
        "error": letter.error,
        "traceback": letter.traceback,
        "key": _shown(letter.key),
        "value": _shown(letter.value),
        "headers": {name: _shown(value) for name, value in letter.headers},
    }
    if as_json:
        print_json(body)
        return
    for name in (
        "id",
        "agent",
        "failed_at",
        "error_type",
        "error_code",
        "error",
        "source",
        "replays",
        "key",
        "headers",
    ):
        print(f"{name:>11}  {body[name]}")
    print(f"{'value':>11}  {body['value']}")
    print(f"{'traceback':>11}\n{letter.traceback}")


def _shown(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode()


async def _replay(
    settings: Settings,
    source: str | None,
    choice: _Choice,
    force: bool,
    dry_run: bool,
    as_json: bool,
) -> bool:
    command = "dlq replay"
    choice.check(source)
    specs = _id_topics(settings, choice.ids) if choice.ids else _dead_letter_specs(command, source)
    if NOTIFICATIONS in specs and (source is not None or choice.ids):
        refuse(
            command,
            "failed webhook deliveries are retried with `checkout webhooks retry`, which sends "
            "them as new deliveries (a replayed notification would be taken for the old one)",
        )
    outcome = _Outcome()
    async with (
        database(settings, maxsize=2) as pool,
        KafkaOperations(settings.kafka_bootstrap_servers) as kafka,
    ):
        replays = PostgresDeadLetterReplays(pool)
        for spec in specs:
            if spec is not NOTIFICATIONS:
                await _replay_topic(settings, kafka, replays, spec, choice, force, dry_run, outcome)
        if not dry_run and outcome.replayed:
            await PostgresAuditLog(pool).append(
                operator_entry(
                    command,
                    "ok",
                    target_id=source or ",".join(choice.ids)[:200],
                    details={"replayed": [item["id"] for item in outcome.replayed][:100]},
                )
            )
    if choice.ids:
        found = {item["id"] for item in outcome.replayed + outcome.skipped}
        outcome.skipped += [
            {"id": letter_id, "reason": "no such dead letter (deleted by retention or a purge?)"}
            for letter_id in choice.ids
            if letter_id not in found
        ]
    outcome.report(dry_run, as_json)
    if not outcome.replayed and not outcome.skipped:
        refuse(command, "no dead letter matches")
    return bool(outcome.replayed) or not outcome.skipped


@dataclass
class _Outcome:
    replayed: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def report(self, dry_run: bool, as_json: bool) -> None:
        if as_json:
            print_json({"dry_run": dry_run, "replayed": self.replayed, "skipped": self.skipped})
            return
        verb = "would replay" if dry_run else "replayed"
        for item in self.replayed:
            print(f"{verb} {item['id']} -> {item['to']}")
        for item in self.skipped:
            print(f"skipped {item['id']}: {item['reason']}")
        print(f"{len(self.replayed)} {verb}, {len(self.skipped)} skipped")


async def _replay_topic(
    settings: Settings,
    kafka: KafkaOperations,
    replays: PostgresDeadLetterReplays,
    spec: TopicSpec,
    choice: _Choice,
    force: bool,
    dry_run: bool,
    outcome: _Outcome,
) -> None:
    dlq_topic = _dlq_name(settings, spec)
    letters, unreadable = await _letters(kafka, dlq_topic)
    for bad in unreadable:
        letter_id = f"{dlq_topic}:{bad.record.partition}:{bad.record.offset}"
        if choice.everything or letter_id in choice.ids:
            outcome.skipped.append({"id": letter_id, "reason": bad.reason})
    before = await replays.replayed(dlq_topic)
    chosen = []
    for letter in (each for each in letters if choice.wants(each)):
        times = before.get((letter.partition, letter.offset), 0)
        if times and not force:
            reason = f"replayed {times} time(s) already; --force to send it again"
            outcome.skipped.append({"id": letter.letter_id, "reason": reason})
        else:
            chosen.append(letter)
    if dry_run or not chosen:
        outcome.replayed += [_replay_json(letter, None) for letter in chosen]
        return
    # This namespace's source topic (the letter names the topic it came from, the same one).
    target = topic_name(spec, settings.topic_namespace)
    placed = await kafka.produce(
        target, [(letter.key, letter.value, letter.replay_headers()) for letter in chosen]
    )
    # Recorded once Kafka acknowledged them: a crash in between leaves them replayable again,
    # which the agents' idempotence absorbs.
    await replays.record(
        Replayed(
            dlq_topic=dlq_topic,
            partition=letter.partition,
            offset=letter.offset,
            source_topic=target,
            error_type=letter.error_type,
            to_partition=partition,
            to_offset=offset,
        )
        for letter, (partition, offset) in zip(chosen, placed, strict=True)
    )
    outcome.replayed += [
        _replay_json(letter, where) for letter, where in zip(chosen, placed, strict=True)
    ]


def _replay_json(letter: StoredLetter, where: tuple[int, int] | None) -> dict[str, Any]:
    return {
        "id": letter.letter_id,
        "error_type": letter.error_type,
        "to": letter.source_topic
        if where is None
        else f"{letter.source_topic}[{where[0]}]@{where[1]}",
    }


async def _purge(settings: Settings, source: str, everything: bool, as_json: bool) -> None:
    command = "dlq purge"
    spec = _dead_letter_specs(command, source)[0]
    dlq_topic = _dlq_name(settings, spec)
    async with (
        database(settings, maxsize=1) as pool,
        KafkaOperations(settings.kafka_bootstrap_servers) as kafka,
    ):
        partitions = await kafka.partitions(dlq_topic)
        if not partitions:
            refuse(command, f"topic {dlq_topic} does not exist")
        starts, ends = await kafka.watermarks(partitions)
        cut: dict[TopicPartition, int] = {}
        if everything:
            cut = {tp: ends[tp] for tp in partitions if ends[tp] > starts[tp]}
        else:
            replayed = await PostgresDeadLetterReplays(pool).replayed(dlq_topic)
            records = await kafka.read_topic(dlq_topic, limit=MAX_LETTERS)
            for tp in partitions:
                offsets = sorted(r.offset for r in records if r.partition == tp.partition)
                below = starts[tp]
                for offset in offsets:
                    if (tp.partition, offset) not in replayed:
                        break
                    below = offset + 1
                else:
                    below = max(below, ends[tp]) if offsets else below
                if below > starts[tp]:
                    cut[tp] = below
        low = await kafka.delete_before(cut)
        deleted = {tp.partition: offset - starts[tp] for tp, offset in cut.items()}
        await PostgresAuditLog(pool).append(
            operator_entry(
                command,
                "ok",
                target_id=dlq_topic,
                details={"all": everything, "deleted": {str(k): v for k, v in deleted.items()}},
            )
        )
    body = {
        "topic": dlq_topic,
        "deleted": sum(deleted.values()),
        "partitions": [
            {
                "partition": tp.partition,
                "deleted_before": cut.get(tp, starts[tp]),
                "low_watermark": low.get(tp, starts[tp]),
                "end": ends[tp],
            }
            for tp in partitions
        ],
    }
    if as_json:
        print_json(body)
    else:
        print(f"{dlq_topic}: {body['deleted']} dead letters deleted")
