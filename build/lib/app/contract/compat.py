"""Is the event contract still compatible with what was published? The schema compatibility guard.

``docs/events/compat/v<schema_version>/`` holds a frozen copy of the event schemas as they were
published for that ``schema_version`` (the baseline). Within one ``schema_version`` the contract
may only grow (docs/events.md, "Compatibility"): new event types, new optional properties, wider
enums. ``breaking_changes`` compares the baseline with the schemas the models generate today and
names every change that would break an integrator: an event type or a property removed, a
property newly required or no longer required, a type, format, pattern, const or bound changed, an
enum value removed, an object closed to extra properties. It follows ``$ref`` into ``$defs`` the
way pydantic writes them, and ``anyOf`` / ``oneOf`` alternatives (``X | None``).

When it reports something, do not refreeze the baseline to silence it: make the change additive,
or publish it as a new ``schema_version`` (a new baseline, and a period of double publishing).

``python -m app.contract.compat`` checks (exit 1 on a breaking change); ``--freeze`` writes the
baseline of the current ``schema_version`` once, and refuses to overwrite an existing one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from app.contract.schemas import DEFAULT_DIRECTORY, event_schema
from app.contract.schemas import write as write_schemas
from app.domain.events import EVENT_TYPES, SCHEMA_VERSION

Schema = Mapping[str, Any]

BASELINE_ROOT: Final = DEFAULT_DIRECTORY / "compat"
BASELINE_DIRECTORY: Final = BASELINE_ROOT / f"v{SCHEMA_VERSION}"

# Keywords whose value must not change at all: a consumer may rely on any of them.
_UNCHANGEABLE: Final = ("format", "pattern", "const")
# Bounds that may only move outwards: (keyword, True when a larger value narrows the schema).
_BOUNDS: Final = (
    ("minimum", True),
    ("exclusiveMinimum", True),
    ("minLength", True),
    ("minItems", True),
    ("maximum", False),
    ("exclusiveMaximum", False),
    ("maxLength", False),
    ("maxItems", False),
)


def load_schemas(directory: Path) -> dict[str, dict[str, Any]]:
    """Event type → schema, for every ``<EventType>.json`` in ``directory``."""
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("*.json"))
    }


def current_schemas() -> dict[str, dict[str, Any]]:
    """The schemas the models generate now (what the platform emits), by event type."""
    return {event_type: event_schema(event_type) for event_type in sorted(EVENT_TYPES)}


def breaking_changes(baseline: Mapping[str, Schema], current: Mapping[str, Schema]) -> list[str]:
    """Every incompatible change from ``baseline`` to ``current``, one line each.

    Event types only in ``current`` are new, hence fine.
    """
    problems = [f"{event_type}: event type removed" for event_type in baseline.keys() - current]
    for event_type in sorted(baseline.keys() & current.keys()):
        problems += schema_changes(baseline[event_type], current[event_type], where=event_type)
    return sorted(problems)


def schema_changes(old: Schema, new: Schema, where: str = "") -> list[str]:
    """Incompatible changes from ``old`` to ``new`` (two whole schema documents)."""
    return _Comparison(old, new).node(old, new, where or "$")


class _Comparison:
    """One walk over two schema documents; ``$ref`` is resolved in each one's own ``$defs``."""

    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.visiting: set[tuple[str, str]] = set()  # ($ref, $ref) pairs: stops on recursion

    def node(self, old: Schema, new: Schema, where: str) -> list[str]:
        refs = (old.get("$ref", ""), new.get("$ref", ""))
        if refs != ("", ""):
            if refs in self.visiting:
                return []
            self.visiting.add(refs)
            try:
                return self.node(_resolve(self.old_root, old), _resolve(self.new_root, new), where)
            finally:
                self.visiting.discard(refs)
        if _alternatives(old) != [old] or _alternatives(new) != [new]:
            return self.alternatives(old, new, where)
        return [
            *_type_changes(old, new, where),
            *_keyword_changes(old, new, where),
            *self.properties(old, new, where),
            *self.items(old, new, where),
        ]

    def alternatives(self, old: Schema, new: Schema, where: str) -> list[str]:
        """Each value the old schema accepted must still be accepted by some new alternative."""
        problems: list[str] = []
        candidates = _alternatives(new)
        for old_alternative in _alternatives(old):
            attempts = [self.node(old_alternative, each, where) for each in candidates]
            if all(attempts):  # no alternative takes it: report the closest miss
                closest = min(attempts, key=len)
                problems += closest
        return problems

    def properties(self, old: Schema, new: Schema, where: str) -> list[str]:
        old_properties = old.get("properties", {})
        new_properties = new.get("properties", {})
        old_required = set(old.get("required", ()))
        new_required = set(new.get("required", ()))
        problems = [f"{where}.{name}: removed" for name in old_properties.keys() - new_properties]
        # Events already in the log lack a newly required property; consumers rely on a
        # property that was always there. Beware: the schemas are generated in serialisation
        # mode, where pydantic lists a field with a default as required, so a new field needs
        # keeping out of ``required`` to be additive.
        problems += [f"{where}.{name}: newly required" for name in new_required - old_required]
        problems += [
            f"{where}.{name}: no longer required"
            for name in old_required - new_required
            if name in new_properties
        ]
        for name in sorted(old_properties.keys() & new_properties.keys()):
            problems += self.node(old_properties[name], new_properties[name], f"{where}.{name}")
        old_extra = old.get("additionalProperties", True)
        new_extra = new.get("additionalProperties", True)
        if new_extra is False and old_extra is not False:
            problems.append(f"{where}: closed to additional properties")
        elif isinstance(old_extra, Mapping) and isinstance(new_extra, Mapping):
            problems += self.node(old_extra, new_extra, f"{where}.*")
        return problems

    def items(self, old: Schema, new: Schema, where: str) -> list[str]:
        if isinstance(old.get("items"), Mapping) and isinstance(new.get("items"), Mapping):
            return self.node(old["items"], new["items"], f"{where}[]")
        return []


def _resolve(root: Schema, node: Schema) -> Schema:
    """``node`` with its local ``$ref`` (``#/$defs/Name``) replaced by the definition."""
    ref = node.get("$ref")
    if ref is None:
        return node
    target: Any = root
    for part in filter(None, ref.removeprefix("#").split("/")):
        target = target[part]
    return {**target, **{key: value for key, value in node.items() if key != "$ref"}}


def _alternatives(node: Schema) -> list[Schema]:
    return list(node.get("anyOf") or node.get("oneOf") or [node])


def _types(node: Schema) -> set[str] | None:
    """The JSON types a node allows, or None when it does not restrict them."""
    if "type" not in node:
        return None
    declared = node["type"]
    types = {declared} if isinstance(declared, str) else set(declared)
    return types | {"integer"} if "number" in types else types


def _type_changes(old: Schema, new: Schema, where: str) -> list[str]:
    old_types, new_types = _types(old), _types(new)
    if new_types is None or (old_types is not None and old_types <= new_types):
        return []
    return [f"{where}: type changed from {old.get('type', 'any')} to {new['type']}"]


def _keyword_changes(old: Schema, new: Schema, where: str) -> list[str]:
    problems = [
        f"{where}: {keyword} changed from {old.get(keyword)!r} to {new[keyword]!r}"
        for keyword in _UNCHANGEABLE
        if keyword in new and old.get(keyword) != new[keyword]
    ]
    if "enum" in new:
        removed = [value for value in old.get("enum", ()) if value not in new["enum"]]
        if removed or "enum" not in old:
            problems.append(f"{where}: enum narrowed, no longer allows {removed or 'any value'}")
    for keyword, larger_narrows in _BOUNDS:
        if keyword not in new:
            continue
        if keyword not in old:
            problems.append(f"{where}: {keyword} {new[keyword]!r} added")
        elif new[keyword] != old[keyword] and (new[keyword] > old[keyword]) == larger_narrows:
            problems.append(
                f"{where}: {keyword} narrowed from {old[keyword]!r} to {new[keyword]!r}"
            )
    return problems


def freeze(directory: Path = BASELINE_DIRECTORY) -> list[Path]:
    """Write the current schemas as the published baseline; never overwrites one."""
    if directory.exists() and any(directory.glob("*.json")):
        raise FileExistsError(f"{directory} is a published baseline and stays as it is")
    return write_schemas(directory)  # no stale files to remove: the directory has none


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.contract.compat",
        description="Check the event schemas against the published baseline, or freeze it.",
    )
    parser.add_argument("--freeze", action="store_true", help="write the baseline (once)")
    parser.add_argument("--dir", type=Path, default=BASELINE_DIRECTORY, help="baseline directory")
    args = parser.parse_args(argv)
    if args.freeze:
        try:
            written = freeze(args.dir)
        except FileExistsError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"froze {len(written)} event schemas in {args.dir}")
        return 0
    baseline = load_schemas(args.dir)
    if not baseline:
        print(f"no baseline in {args.dir}: run with --freeze once published", file=sys.stderr)
        return 1
    problems = breaking_changes(baseline, current_schemas())
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{len(baseline)} event types compatible with the baseline in {args.dir}")
    return 0


if __name__ == "__main__":  # pragma: no cover - the tests call main()
    sys.exit(main())
