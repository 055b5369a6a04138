from __future__ import annotations

import json
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from app.contract.schemas import DEFAULT_DIRECTORY
from app.domain.commands import ResolveInvoice
from app.domain.events import (
    EVENT_TYPES,
    DomainEvent,
    InvoiceCreated,
    UnmatchedTransferReceived,
    event_id_for,
    parse_event,
)
from app.domain.invoice import Invoice
from app.domain.money_out import Attempt, Receipt, TransferKind, request_transfer
from app.domain.payment import Payment
from app.domain.settlement import Settlement, handle_settlement
from app.domain.webhooks import endpoint_disabled_event

from .factories import (
    BLOCK,
    T0,
    cancel,
    complete,
    confirmed,
    detect,
    detected,
    expire,
    fail,
    fail_payment,
    head,
    new_invoice,
    new_payment,
    new_settlement,
    orphan,
    orphaned,
    reverse,
    run_invoice,
    run_payment,
    transfer_observed,
    usdt,
)

pytestmark = pytest.mark.unit


def every_kind_of_event() -> list[DomainEvent]:
    """At least one event of each type, as the aggregates emit them."""
    invoices = [
        run_invoice(
            new_invoice(amount=usdt("10")),
            detected("p1", usdt("4")),
            orphaned("p1"),
            confirmed("p2", usdt("10.5")),
        ),
        run_invoice(new_invoice(), cancel()),
        run_invoice(new_invoice(), expire()),
        run_invoice(
            new_invoice(amount=usdt("10")),
            detected("p3", usdt("4")),
            confirmed("p3", usdt("4")),
            expire(),
            ResolveInvoice(
                command_id="resolve:1",
                invoice_id="inv_1",
                action="extend",
                resolved_at=T0 + timedelta(days=2),
                expires_at=T0 + timedelta(days=3),
            ),
        ),
    ]
    payments = [
        run_payment(new_payment(required_confirmations=3), head(BLOCK + 2)),
        run_payment(new_payment(), orphan()),
        run_payment(new_payment(), fail_payment()),
    ]
    settlement = new_settlement()
    settlements = [
        Settlement.replay([*settlement.history, *settlement.decide(complete())]),
        Settlement.replay([*settlement.history, *settlement.decide(fail())]),
        handle_settlement(handle_settlement(settlement, complete())[0], reverse())[0],
    ]
    aggregates: list[Invoice | Payment | Settlement] = [*invoices, *payments, *settlements]
    endpoint_disabled = endpoint_disabled_event(
        endpoint_id="we_0123456789abcdef01234567",
        endpoint_version=2,
        merchant_id="mer_1",
        url="https://shop.example/hooks",
        failing_since=T0,
        disabled_at=T0 + timedelta(days=5),
    )
    return [
        *(event for aggregate in aggregates for event in aggregate.history),
        endpoint_disabled,
        *money_out_events(),
        UnmatchedTransferReceived.of(transfer_observed(n=7), "not_a_deposit_address"),
        UnmatchedTransferReceived.of(
            transfer_observed(n=8),
            "after_monitoring_window",
            invoice_id="inv_1",
            merchant_id="mer_1",
        ),
    ]


def money_out_events() -> list[DomainEvent]:
    """Every refund and payout event: created, approved, paid or confirmed, failed, cancelled."""
    receipt = Receipt(120, 6_800_000, 64_285, 345, True, "SUCCESS")
    attempt = Attempt(1, "ab" * 32, {"contract": []}, "0a02", 1_800_000_000_000)
    events: list[DomainEvent] = []
    for kind, approval in ((TransferKind.REFUND, "automatic"), (TransferKind.PAYOUT, "admin")):
        created = request_transfer(
            transfer_id=f"{kind.value}_1",
            kind=kind,
            merchant_id="mer_1",
            amount=usdt("2"),
            to_address="TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf",
            at=T0,
            approval=approval,  # type: ignore[arg-type]
            invoice_id="inv_1" if kind is TransferKind.REFUND else None,
            causation_id=f"{kind.value}:key",
        )
        events.extend(created.events)
        state = created.state
        if approval == "admin":
            cancelled = state.cancel(T0)
            events.extend(cancelled.events)
            approved = state.approve("usr_admin", T0)
            events.extend(approved.events)
            state = approved.state
        broadcast = state.signing(attempt, T0).state.signed("cd" * 65, T0).broadcast(T0).state
        events.extend(broadcast.confirm(receipt, T0).events)
        events.extend(broadcast.fail("failed on chain: OUT_OF_ENERGY", T0, receipt).events)
    return events


EVENTS = every_kind_of_event()


def test_every_event_type_is_exercised() -> None:
    assert {event.event_type for event in EVENTS} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.event_type)
def test_json_to_model_to_json_is_exact(event: DomainEvent) -> None:
    wire = event.model_dump_json()
    parsed = parse_event(wire)
    assert type(parsed) is type(event)
    assert parsed == event
    assert parsed.model_dump_json() == wire
    assert parse_event(wire.encode()) == event
    assert parse_event(json.loads(wire)) == event


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.event_type)
def test_emitted_events_match_their_checked_in_schema(event: DomainEvent) -> None:
    schema = json.loads((DEFAULT_DIRECTORY / f"{event.event_type}.json").read_text())
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [error.message for error in validator.iter_errors(json.loads(event.model_dump_json()))]
    assert errors == []


def test_the_envelope_carries_what_consumers_route_and_deduplicate_on() -> None:
    invoice = new_invoice()
    created = invoice.history[0]
    wire: dict[str, Any] = json.loads(created.model_dump_json())
    assert set(wire) == {
        "event_id",
        "event_type",
        "schema_version",
        "aggregate_type",
        "aggregate_id",
        "aggregate_version",
        "merchant_id",
        "causation_id",
        "occurred_at",
        "data",
    }
    assert wire["event_type"] == "InvoiceCreated"
    assert wire["aggregate_type"] == "invoice"
    assert wire["schema_version"] == 1
    assert wire["occurred_at"] == "2025-01-01T12:00:00Z"
    assert wire["data"]["amount"] == "9.99"
    assert wire["data"]["fee_percentage"] == "1"


def test_the_schema_rejects_float_amounts() -> None:
    created = new_invoice().history[0]
    schema = json.loads((DEFAULT_DIRECTORY / "InvoiceCreated.json").read_text())
    wire = json.loads(created.model_dump_json())
    wire["data"]["amount"] = 9.99
    assert not Draft202012Validator(schema).is_valid(wire)


def test_event_ids_are_derived_from_the_cause_not_random() -> None:
    first = new_invoice(command_id="idem-1").history[0]
    second = new_invoice(command_id="idem-1").history[0]
    other = new_invoice(command_id="idem-2").history[0]
    assert first.event_id == second.event_id != other.event_id
    assert first.event_id == event_id_for("invoice", "inv_1", 1, "idem-1", "InvoiceCreated")
    assert first.event_id.version == 5


def test_occurred_at_is_kept_in_utc() -> None:
    created = new_invoice().history[0]
    shifted = json.loads(created.model_dump_json())
    shifted["occurred_at"] = "2025-01-01T14:00:00+02:00"
    parsed = parse_event(shifted)
    assert parsed.occurred_at == T0
    assert parsed.model_dump_json() == created.model_dump_json()


@pytest.mark.parametrize(
    "change",
    [
        {"event_type": "InvoiceTeleported"},
        {"schema_version": 2},
        {"occurred_at": "2025-01-01T12:00:00"},  # no timezone
        {"aggregate_version": 0},
        {"unexpected": True},
    ],
)
def test_parse_refuses_what_is_not_a_known_valid_event(change: dict[str, Any]) -> None:
    wire = json.loads(new_invoice().history[0].model_dump_json())
    wire.update(change)
    with pytest.raises(ValidationError):
        parse_event(json.dumps(wire))


def test_events_are_frozen() -> None:
    created = new_invoice().history[0]
    assert isinstance(created, InvoiceCreated)
    with pytest.raises(ValidationError):
        created.aggregate_version = 5  # type: ignore[misc]


def test_record_derives_the_envelope_from_the_class() -> None:
    created = new_invoice().history[0]
    rebuilt = InvoiceCreated.record(
        aggregate_id="inv_1",
        aggregate_version=1,
        merchant_id="mer_1",
        causation_id=created.causation_id,
        occurred_at=T0 + timedelta(hours=0),
        data=created.data,
    )
    assert rebuilt == created
    assert isinstance(rebuilt.event_id, uuid.UUID)
    assert rebuilt.data.fee_percentage == Decimal("1")


def test_payment_events_carry_the_transfer() -> None:
    detected_event = run_payment(new_payment(), head(BLOCK)).history[0]
    wire = json.loads(detected_event.model_dump_json())
    assert wire["aggregate_id"] == wire["data"]["tx_hash"] + ":0"
    assert detect().payment_id == wire["aggregate_id"]
