"""JSON Schemas of the domain events, generated from the models into ``docs/events/``.

``python -m app.contract.schemas`` (re)writes ``docs/events/<EventType>.json``;
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from app.domain.events import EVENT_TYPES, SCHEMA_VERSION

SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_DIRECTORY: Final = Path(__file__).resolve().parents[2] / "docs" / "events"


def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one event type, as published."""
    model = EVENT_TYPES[event_type]
    schema = model.model_json_schema(mode="serialization")
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"https://crypto-checkout.example/schemas/events/{event_type}/v{SCHEMA_VERSION}",
        **schema,
    }


def rendered_schemas() -> dict[str, str]:
    """File name → file content for every event type, byte for byte as checked in."""
    return {
        f"{event_type}.json": json.dumps(event_schema(event_type), indent=2, sort_keys=True) + "\n"
        for event_type in sorted(EVENT_TYPES)
    }


def drift(directory: Path) -> list[str]:
    """What differs between ``directory`` and the models: one line per file."""
    expected = rendered_schemas()
    found = {path.name: path for path in directory.glob("*.json")} if directory.is_dir() else {}
    problems = [f"missing: {name}" for name in sorted(expected.keys() - found.keys())]
    problems += [f"unknown event type: {name}" for name in sorted(found.keys() - expected.keys())]
    problems += [
        f"out of date: {name}"
        for name in sorted(expected.keys() & found.keys())
        if found[name].read_text(encoding="utf-8") != expected[name]
    ]
    return problems


def write(directory: Path) -> list[Path]:
    """Write every schema and remove those of event types that no longer exist."""
    directory.mkdir(parents=True, exist_ok=True)
    expected = rendered_schemas()
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
    args = parser.parse_args(argv)
    if args.check:
        problems = drift(args.dir)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run: python -m app.contract.schemas", file=sys.stderr)
            return 1
        print(f"{len(EVENT_TYPES)} event schemas up to date in {args.dir}")
        return 0
    written = write(args.dir)
    print(f"wrote {len(written)} event schemas to {args.dir}")
    return 0


if __name__ == "__main__":  # pragma: no cover - the tests run it in a subprocess
    sys.exit(main())
