"""An integrator's consumer of crypto-checkout's domain events (docs/events.md), with aiokafka.

    python examples/integrator_consumer.py --group my-app --from-beginning [--bootstrap HOST:9092]

It reads in its own consumer group, skips event types it does not know, validates each event
against docs/events/<event_type>.json when ``jsonschema`` is installed, drops duplicates by
``event_id``, prints one line per event, and commits offsets only after a batch is handled: a
crash replays uncommitted events, and the deduplication absorbs them (at-least-once delivery).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord

try:
    from jsonschema import Draft202012Validator, FormatChecker
except ImportError:  # validation is optional: pip install jsonschema
    Draft202012Validator = None

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "events"


class SeenEvents:
    """The most recent ``capacity`` event ids handled: an in-memory LRU for the example.

    In production keep the ids in a durable store, written in the same transaction as the
    event's effect; this one is forgotten on restart, when redeliveries are most likely.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)


def load_validators(directory: Path = SCHEMAS, *, strict: bool = False) -> dict[str, Any]:
    """Event type → its validator (``None`` without jsonschema): the event types we know.

    Unless ``strict``, fields the schema does not name are accepted: a newer platform may add
    fields within the same schema_version, and consumers must ignore them.
    """
    schemas = {path.stem: json.loads(path.read_text()) for path in directory.glob("*.json")}
    if Draft202012Validator is None:
        return dict.fromkeys(schemas)
    checker = FormatChecker()
    checker.checks("date-time", raises=ValueError)(_is_utc_time)
    return {
        event_type: Draft202012Validator(
            schema if strict else _open(schema), format_checker=checker
        )
        for event_type, schema in schemas.items()
    }


def _is_utc_time(text: object) -> bool:
    """RFC 3339 date-time with an offset (jsonschema checks it only with an optional package)."""
    if not isinstance(text, str):
        return True
    return "T" in text.upper() and datetime.fromisoformat(text).tzinfo is not None


def _open(schema: Any) -> Any:
    """The schema without ``additionalProperties: false``, anywhere in it."""
    if isinstance(schema, dict):
        return {k: _open(v) for k, v in schema.items() if (k, v) != ("additionalProperties", False)}
    return [_open(item) for item in schema] if isinstance(schema, list) else schema


@dataclass(frozen=True)
class Outcome:
    status: str  # "new", "duplicate", "unknown type" or "invalid"
    event: dict[str, Any] = field(default_factory=dict)
    problem: str = ""


def handle(value: bytes, validators: dict[str, Any], seen: SeenEvents) -> Outcome:
    """What to do with one record's value."""
    try:
        event = json.loads(value)
    except ValueError as exc:
        return Outcome("invalid", problem=f"not JSON: {exc}")
    if not isinstance(event, dict) or "event_id" not in event:
        return Outcome("invalid", problem="not an event")
    if event.get("event_type") not in validators:
        return Outcome("unknown type", event)  # a newer event type: skip it, do not fail
    validator = validators[event["event_type"]]
    error = None if validator is None else next(validator.iter_errors(event), None)
    if error is not None:
        return Outcome("invalid", event, f"{error.json_path}: {error.message}")
    return Outcome("duplicate" if event["event_id"] in seen else "new", event)


async def print_outcome(record: ConsumerRecord, outcome: Outcome) -> None:
    """Where your application acts on a "new" event; the example prints every outcome.

    In production, park "invalid" events where someone will look (and alert), rather than
    stopping the partition or dropping them silently.
    """
    e = outcome.event
    print(
        f"{record.partition:>2}@{record.offset:<6} {outcome.status:<12} {e.get('event_type')} "
        f"{e.get('aggregate_type')}/{e.get('aggregate_id')} v{e.get('aggregate_version')} "
        f"{e.get('data', {}).get('status', '')} {outcome.problem}".rstrip(),
        flush=True,
    )


async def consume(
    *,
    bootstrap: str,
    group: str,
    topic: str,
    from_beginning: bool = False,
    validators: dict[str, Any] | None = None,
    apply: Callable[[ConsumerRecord, Outcome], Awaitable[None]] = print_outcome,
    stop: asyncio.Event | None = None,
) -> None:
    """Consume ``topic`` in ``group`` until ``stop`` is set (or forever)."""
    validators = load_validators() if validators is None else validators
    seen = SeenEvents()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    try:
        while stop is None or not stop.is_set():
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    outcome = handle(record.value, validators, seen)
                    await apply(record, outcome)
                    if outcome.status == "new":
                        seen.add(outcome.event["event_id"])
            if batches:
                await consumer.commit()  # everything fetched has been handled
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Print crypto-checkout's domain events.")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("--group", required=True, help="your own consumer group id")
    parser.add_argument("--topic", default="crypto-checkout.domain-events")
    parser.add_argument("--from-beginning", action="store_true", help="a new group reads all")
    parser.add_argument("--schemas", type=Path, default=SCHEMAS, help="<EventType>.json files")
    args = parser.parse_args()
    run = consume(
        bootstrap=args.bootstrap,
        group=args.group,
        topic=args.topic,
        from_beginning=args.from_beginning,
        validators=load_validators(args.schemas),
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run)


if __name__ == "__main__":
    main()
