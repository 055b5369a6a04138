"""docs/events.md is the integrator contract in prose: it must name what the code publishes."""

from __future__ import annotations

import re

import pytest

from app.contract.schemas import DEFAULT_DIRECTORY
from app.domain.events import EVENT_TYPES, DomainEvent
from app.runtime.dead_letters import DeadLetter
from app.runtime.topics import PUBLIC_TOPICS, TopicSpec, dead_letter

pytestmark = pytest.mark.unit

DOC = DEFAULT_DIRECTORY.parent / "events.md"
TEXT = DOC.read_text(encoding="utf-8")


def table_rows() -> list[list[str]]:
    """The cells of every Markdown table row of the document, header rows included."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in TEXT.splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]


def row_for(first_cell: str) -> list[str]:
    rows = [row for row in table_rows() if row[0] == first_cell]
    assert rows, f"docs/events.md has no table row for {first_cell}"
    assert len(rows) == 1, f"docs/events.md has {len(rows)} rows for {first_cell}"
    return rows[0]


@pytest.mark.parametrize(
    "spec",
    [*PUBLIC_TOPICS, *map(dead_letter, PUBLIC_TOPICS)],
    ids=lambda spec: spec.name,
)
def test_every_public_topic_is_listed_with_its_partitions_key_and_retention(
    spec: TopicSpec,
) -> None:
    _, partitions, key, retention, _ = row_for(f"`{spec.name}`")
    assert partitions == str(spec.partitions)
    assert key.startswith(spec.key)
    assert retention == f"{spec.retention.days} days"


def test_the_event_type_table_lists_exactly_the_event_types_with_their_aggregate() -> None:
    documented = {
        row[0].strip("`"): row[1].strip("`")
        for row in table_rows()
        if len(row) == 4 and re.fullmatch(r"\[\w+\.json\]\(events/\w+\.json\)", row[3])
    }
    assert documented == {event_type: cls.AGGREGATE for event_type, cls in EVENT_TYPES.items()}


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_type_links_its_checked_in_schema(event_type: str) -> None:
    row = row_for(f"`{event_type}`")
    assert row[-1] == f"[{event_type}.json](events/{event_type}.json)"
    assert (DOC.parent / "events" / f"{event_type}.json").is_file()


@pytest.mark.parametrize("field", list(DomainEvent.model_fields))
def test_every_envelope_field_is_described(field: str) -> None:
    assert row_for(f"`{field}`")[2]


def test_every_dead_letter_field_is_described() -> None:
    record = DeadLetter(
        agent="settlement_agent",
        error=ValueError("boom"),
        key=b"inv_1",
        value=b"{}",
        source_topic="crypto-checkout.domain-events",
    ).record()
    for field in record:
        assert row_for(f"`{field}`")[1]


def test_every_relative_link_points_at_a_file() -> None:
    targets = re.findall(r"\]\((?!https?:|#)([^)#]+)", TEXT)
    assert targets
    missing = [target for target in targets if not (DOC.parent / target).exists()]
    assert missing == []


def test_the_rules_integrators_rely_on_are_stated() -> None:
    for rule in (
        "Deduplicate on `event_id`",
        "Ignore fields you do not know",
        "Ignore event types you do not know",
        "Commit after processing",
    ):
        assert rule in TEXT
