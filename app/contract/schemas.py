"""JSON Schemas of the domain events and of the analytics messages, generated from the models into
``docs/events/`` and ``docs/analytics/``.

``python -m app.contract.schemas`` (re)writes ``docs/events/<EventType>.json`` and
``docs/analytics/<MessageType>.json``;
``python -m app.contract.schemas --check`` writes nothing and exits 1 when a file differs from the
models, is missing, or describes an event type that no longer exists. A unit test runs the check,
so the checked-in schemas cannot drift from the code.

The schemas describe events as they are on the wire (serialisation mode): amounts and fee
percentages are canonical decimal strings, times are RFC 3339 in UTC.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from app.domain.analytics import ANALYTICS_SCHEMA_VERSION, ANALYTICS_TYPES
from app.domain.events import EVENT_TYPES, SCHEMA_VERSION

SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_DIRECTORY: Final = Path(__file__).resolve().parents[2] / "docs" / "events"
ANALYTICS_DIRECTORY: Final = DEFAULT_DIRECTORY.parent / "analytics"


def analytics_schema(message_type: str) -> dict[str, Any]:
    """The JSON Schema of one message type of crypto-checkout.analytics."""
    model = ANALYTICS_TYPES[message_type]
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": "https://crypto-checkout.example/schemas/analytics/"
        f"{message_type}/v{ANALYTICS_SCHEMA_VERSION}",
        **model.model_json_schema(mode="serialization"),
    }


def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one event type, as published."""
    model = EVENT_TYPES[event_type]
    schema = model.model_json_schema(mode="serialization")
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"https://crypto-checkout.example/schemas/events/{event_type}/v{SCHEMA_VERSION}",
        **schema,
    }


def rendered_schemas(kind: str = "events") -> dict[str, str]:
    """File name → file content for every event type (or analytics message type, ``kind``
    "analytics"), byte for byte as checked in."""
    types: Mapping[str, type[BaseModel]] = EVENT_TYPES if kind == "events" else ANALYTICS_TYPES
    schema = event_schema if kind == "events" else analytics_schema
    return {
        f"{name}.json": json.dumps(schema(name), indent=2, sort_keys=True) + "\n"
        for name in sorted(types)
    }


def drift(directory: Path, kind: str = "events") -> list[str]:
    """What differs between ``directory`` and the models: one line per file."""
    expected = rendered_schemas(kind)
    found = {path.name: path for path in directory.glob("*.json")} if directory.is_dir() else {}
    problems = [f"missing: {name}" for name in sorted(expected.keys() - found.keys())]
    problems += [f"unknown event type: {name}" for name in sorted(found.keys() - expected.keys())]
    problems += [
        f"out of date: {name}"
        for name in sorted(expected.keys() & found.keys())
        if found[name].read_text(encoding="utf-8") != expected[name]
    ]
    return problems


def write(directory: Path, kind: str = "events") -> list[Path]:
    """Write every schema and remove those of types that no longer exist."""
    directory.mkdir(parents=True, exist_ok=True)
    expected = rendered_schemas(kind)
    for stale in directory.glob("*.json"):
        if stale.name not in expected:
            stale.unlink()
    written = []
    for name, content in expected.items():
        path = directory / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.contract.schemas", description="Generate or check event JSON Schemas."
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the files have drifted")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIRECTORY, help="schema directory")
    parser.add_argument(
        "--analytics-dir", type=Path, default=ANALYTICS_DIRECTORY, help="analytics schemas"
    )
    args = parser.parse_args(argv)
    places = (("events", args.dir), ("analytics", args.analytics_dir))
    if args.check:
        problems = [problem for kind, directory in places for problem in drift(directory, kind)]
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run: python -m app.contract.schemas", file=sys.stderr)
            return 1
        print(f"{len(EVENT_TYPES)} event schemas up to date in {args.dir}")
        print(f"{len(ANALYTICS_TYPES)} analytics schemas up to date in {args.analytics_dir}")
        return 0
    for kind, directory in places:
        written = write(directory, kind)
        print(f"wrote {len(written)} {kind} schemas to {directory}")
    return 0


if __name__ == "__main__":  # pragma: no cover - the tests run it in a subprocess
    sys.exit(main())
