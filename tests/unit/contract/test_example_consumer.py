"""The example integrator consumer's decisions, record by record (its Kafka loop is exercised by
tests/integration/contract)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.domain.events import EVENT_TYPES
from examples.integrator_consumer import SeenEvents, handle, load_validators
from tests.unit.domain.factories import new_invoice

pytestmark = pytest.mark.unit

STRICT = load_validators(strict=True)
OPEN = load_validators()


def wire() -> dict[str, Any]:
    return dict(json.loads(new_invoice().history[0].model_dump_json()))


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def test_it_knows_every_event_type_and_validates_each() -> None:
    assert set(STRICT) == set(OPEN) == set(EVENT_TYPES)
    assert all(validator is not None for validator in STRICT.values())


def test_a_valid_event_is_new_then_a_duplicate_once_seen() -> None:
    seen = SeenEvents()
    event = wire()
    first = handle(encode(event), STRICT, seen)
    assert (first.status, first.event) == ("new", event)
    seen.add(event["event_id"])
    assert handle(encode(event), STRICT, seen).status == "duplicate"


def test_the_lru_forgets_the_oldest_ids() -> None:
    seen = SeenEvents(capacity=2)
    for event_id in ("a", "b", "c"):
        seen.add(event_id)
    assert "a" not in seen
    assert "b" in seen
    assert "c" in seen


def test_an_unknown_event_type_is_skipped_not_failed() -> None:
    event = {**wire(), "event_type": "InvoiceTeleported"}
    assert handle(encode(event), STRICT, SeenEvents()).status == "unknown type"


def test_unknown_fields_are_ignored_unless_strict() -> None:
    event = wire()
    event["data"]["loyalty_points"] = "12"
    assert handle(encode(event), OPEN, SeenEvents()).status == "new"
    rejected = handle(encode(event), STRICT, SeenEvents())
    assert rejected.status == "invalid"
    assert "loyalty_points" in rejected.problem


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", 9.99),  # a float amount
        ("expires_at", "2025-01-01 12:00"),  # no offset
        ("expires_at", "yesterday"),
    ],
)
def test_schema_violations_are_reported_with_where(field: str, value: Any) -> None:
    event = wire()
    event["data"][field] = value
    outcome = handle(encode(event), OPEN, SeenEvents())
    assert outcome.status == "invalid"
    assert outcome.problem.startswith(f"$.data.{field}")


def test_what_is_not_an_event_is_invalid() -> None:
    assert handle(b"{not json", OPEN, SeenEvents()).status == "invalid"
    assert handle(b"[1, 2]", OPEN, SeenEvents()).status == "invalid"
