"""The compatibility guard: the published v1 baseline, and the comparison that protects it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from app.contract.compat import (
    BASELINE_DIRECTORY,
    breaking_changes,
    current_schemas,
    load_schemas,
    main,
    schema_changes,
)
from app.domain.events import EVENT_TYPES

pytestmark = pytest.mark.unit

STRING: dict[str, Any] = {"type": "string"}


def obj(properties: dict[str, Any], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), **extra}


def event(data: dict[str, Any], **defs: Any) -> dict[str, Any]:
    """An event-shaped document: an envelope whose ``data`` is a ``$defs`` entry."""
    return {
        **obj(
            {"event_id": {"type": "string", "format": "uuid"}, "data": {"$ref": "#/$defs/Data"}},
            ("event_id", "data"),
        ),
        "$defs": {"Data": data, **defs},
    }


# --- the guard itself ---------------------------------------------------------------------------


def test_the_published_v1_baseline_holds_every_event_type_published_in_v1() -> None:
    baseline = load_schemas(BASELINE_DIRECTORY)
    assert BASELINE_DIRECTORY.name == "v1"
    assert len(baseline) >= 15
    assert {"InvoiceCreated", "InvoicePaid", "SettlementCompleted"} <= set(baseline)


def test_the_current_schemas_are_an_additive_evolution_of_the_published_baseline() -> None:
    problems = breaking_changes(load_schemas(BASELINE_DIRECTORY), current_schemas())
    assert problems == [], (
        "a breaking change to the event contract; make it additive, or publish a new "
        "schema_version (docs/events.md, Compatibility):\n" + "\n".join(problems)
    )


def test_every_event_type_of_the_baseline_still_exists() -> None:
    assert set(load_schemas(BASELINE_DIRECTORY)) <= set(EVENT_TYPES)


def test_a_real_schema_loses_a_property_and_the_guard_names_it() -> None:
    baseline = load_schemas(BASELINE_DIRECTORY)
    current = copy.deepcopy(current_schemas())
    data = current["InvoicePaid"]["$defs"]["InvoicePaidData"]
    del data["properties"]["fee_percentage"]
    data["required"].remove("fee_percentage")
    current["InvoiceCreated"]["$defs"]["InvoiceCreatedData"]["properties"]["note"] = STRING
    assert breaking_changes(baseline, current) == ["InvoicePaid.data.fee_percentage: removed"]


# --- the comparison on small hand-made pairs ----------------------------------------------------


def test_identical_schemas_are_compatible() -> None:
    schema = event(obj({"amount": STRING}, ("amount",)))
    assert schema_changes(schema, copy.deepcopy(schema)) == []


def test_a_removed_property_is_reported() -> None:
    old = event(obj({"amount": STRING, "reason": STRING}, ("amount",)))
    new = event(obj({"amount": STRING}, ("amount",)))
    assert schema_changes(old, new, "E") == ["E.data.reason: removed"]


def test_a_new_optional_property_is_fine() -> None:
    old = event(obj({"amount": STRING}, ("amount",), additionalProperties=False))
    new = event(obj({"amount": STRING, "note": STRING}, ("amount",), additionalProperties=False))
    assert schema_changes(old, new) == []


def test_a_new_required_property_is_reported() -> None:
    old = event(obj({"amount": STRING}, ("amount",)))
    new = event(obj({"amount": STRING, "note": STRING}, ("amount", "note")))
    assert schema_changes(old, new, "E") == ["E.data.note: newly required"]


def test_a_property_no_longer_required_is_reported() -> None:
    old = event(obj({"amount": STRING, "note": STRING}, ("amount", "note")))
    new = event(obj({"amount": STRING, "note": STRING}, ("amount",)))
    assert schema_changes(old, new, "E") == ["E.data.note: no longer required"]


def test_a_narrowed_enum_is_reported_and_a_widened_one_is_fine() -> None:
    def status(*values: str) -> dict[str, Any]:
        return event(
            obj({"status": {"$ref": "#/$defs/Status"}}, ("status",)),
            Status={"type": "string", "enum": list(values)},
        )

    assert schema_changes(status("pending", "paid"), status("pending"), "E") == [
        "E.data.status: enum narrowed, no longer allows ['paid']"
    ]
    assert schema_changes(status("pending"), status("pending", "paid", "refunded")) == []


def test_an_enum_on_a_property_that_had_none_is_reported() -> None:
    old = event(obj({"status": STRING}))
    new = event(obj({"status": {"type": "string", "enum": ["paid"]}}))
    assert schema_changes(old, new, "E") == [
        "E.data.status: enum narrowed, no longer allows any value"
    ]


def test_type_format_pattern_and_const_changes_are_reported() -> None:
    old = event(
        obj(
            {
                "amount": {"type": "string", "pattern": "^[0-9]+$"},
                "at": {"type": "string", "format": "date-time"},
                "count": {"type": "integer"},
                "kind": {"const": "invoice"},
            }
        )
    )
    new = event(
        obj(
            {
                "amount": {"type": "number"},
                "at": {"type": "string", "format": "date"},
                "count": {"type": "integer"},
                "kind": {"const": "payment"},
            }
        )
    )
    assert sorted(schema_changes(old, new, "E")) == [
        "E.data.amount: type changed from string to number",
        "E.data.at: format changed from 'date-time' to 'date'",
        "E.data.kind: const changed from 'invoice' to 'payment'",
    ]


def test_widening_a_type_or_dropping_a_pattern_is_fine() -> None:
    old = event(obj({"count": {"type": "integer"}, "id": {"type": "string", "pattern": "^a"}}))
    new = event(obj({"count": {"type": "number"}, "id": {"type": "string"}}))
    assert schema_changes(old, new) == []


def test_bounds_may_widen_but_not_narrow() -> None:
    old = event(obj({"id": {"type": "string", "maxLength": 64}, "n": {"minimum": 1}}))
    wider = event(obj({"id": {"type": "string", "maxLength": 128}, "n": {"minimum": 0}}))
    narrower = event(
        obj({"id": {"type": "string", "maxLength": 32}, "n": {"minimum": 1, "maximum": 9}})
    )
    assert schema_changes(old, wider) == []
    assert sorted(schema_changes(old, narrower, "E")) == [
        "E.data.id: maxLength narrowed from 64 to 32",
        "E.data.n: maximum 9 added",
    ]


def test_optional_becoming_non_nullable_is_reported_and_the_reverse_is_fine() -> None:
    nullable = event(obj({"reason": {"anyOf": [STRING, {"type": "null"}]}}, ("reason",)))
    plain = event(obj({"reason": STRING}, ("reason",)))
    assert schema_changes(nullable, plain, "E") == [
        "E.data.reason: type changed from null to string"
    ]
    assert schema_changes(plain, nullable) == []


def test_changes_inside_nested_definitions_are_found_through_refs() -> None:
    def with_payment(amount: dict[str, Any]) -> dict[str, Any]:
        return event(
            obj({"payment": {"$ref": "#/$defs/Payment"}}),
            Payment=obj({"amount": amount, "extra": {"$ref": "#/$defs/Data"}}),
        )

    old = with_payment({"type": "string"})
    new = with_payment({"type": "integer"})
    assert schema_changes(old, new, "E") == [
        "E.data.payment.amount: type changed from string to integer"
    ]


def test_closing_an_object_to_additional_properties_is_reported() -> None:
    old = event(obj({"metadata": {"type": "object", "additionalProperties": STRING}}))
    closed = event(obj({"metadata": {"type": "object", "additionalProperties": False}}))
    retyped = event(
        obj({"metadata": {"type": "object", "additionalProperties": {"type": "integer"}}})
    )
    assert schema_changes(old, closed, "E") == ["E.data.metadata: closed to additional properties"]
    assert schema_changes(old, retyped, "E") == [
        "E.data.metadata.*: type changed from string to integer"
    ]


def test_removed_event_types_are_reported_and_new_ones_are_fine() -> None:
    schema = event(obj({"amount": STRING}))
    baseline = {"InvoicePaid": schema, "InvoiceTeleported": schema}
    current = {"InvoicePaid": schema, "WebhookEndpointDisabled": schema}
    assert breaking_changes(baseline, current) == ["InvoiceTeleported: event type removed"]


# --- the command --------------------------------------------------------------------------------


def test_freeze_writes_a_baseline_once_and_the_check_passes_against_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = tmp_path / "v1"
    assert main(["--dir", str(baseline)]) == 1
    assert "--freeze" in capsys.readouterr().err
    assert main(["--freeze", "--dir", str(baseline)]) == 0
    assert sorted(path.stem for path in baseline.glob("*.json")) == sorted(EVENT_TYPES)
    assert main(["--freeze", "--dir", str(baseline)]) == 1
    assert "stays as it is" in capsys.readouterr().err
    assert main(["--dir", str(baseline)]) == 0
    assert "compatible" in capsys.readouterr().out


def test_the_check_fails_on_a_baseline_with_an_event_type_that_is_gone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--freeze", "--dir", str(tmp_path)])
    (tmp_path / "InvoiceTeleported.json").write_text('{"type": "object"}\n', encoding="utf-8")
    assert main(["--dir", str(tmp_path)]) == 1
    assert "InvoiceTeleported: event type removed" in capsys.readouterr().err
