"""The customer's live view, folded from the platform's own domain events."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.adapters.redis.live_views import FINAL_VIEW_TTL, HELD_STATE_TTL, OPEN_VIEW_TTL, state_ttl
from app.domain.commands import CreateSettlement
from app.domain.events import DomainEvent
from app.domain.settlement import handle_settlement
from app.services.live_view import State, View, apply_event, is_settled, render_view
from tests.unit.domain.factories import DEPOSIT_ADDRESS, T0, usdt

from .scenario import Scenario

pytestmark = pytest.mark.unit

CONTRACT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


def fold(events: Iterable[DomainEvent]) -> tuple[State | None, list[View]]:
    """The final state and every view that would have been published, in order."""
    state: State | None = None
    published: list[View] = []
    for event in events:
        applied = apply_event(state, event, token_contract=CONTRACT)
        if applied is None:
            continue
        state = applied.state
        if applied.view is not None:
            published.append(applied.view)
    return state, published


def final_view(events: Iterable[DomainEvent]) -> View:
    state, _ = fold(events)
    view = render_view(state, token_contract=CONTRACT)
    assert view is not None
    return view


def keys_anywhere(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield key
            yield from keys_anywhere(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from keys_anywhere(inner)


def paid_in_full() -> Scenario:
    scenario = Scenario(amount="150")  # 12 confirmations
    payment = scenario.pay("150")
    scenario.confirmations(payment, 5)
    scenario.confirmations(payment, 12)
    return scenario


def test_a_new_invoice_is_pending_with_the_whole_amount_due_and_its_public_fields() -> None:
    scenario = Scenario(amount="9.99")
    view = final_view(scenario.events)
    assert view == {
        "id": "inv_live_1",
        "status": "pending",
        "payment_exception": None,
        "total": "9.99",
        "usdt_amount": "9.99",
        "currency": "USDT",
        "amount_received": "0",
        "amount_confirmed": "0",
        "amount_due": "9.99",
        "deposit_address": DEPOSIT_ADDRESS,
        "network": "tron",
        "token_contract": CONTRACT,
        "required_confirmations": 1,
        "confirmations": 0,
        "payments": [],
        "created_at": "2025-01-01T12:00:00Z",
        "expires_at": "2025-01-01T12:15:00Z",
        "paid_at": None,
        "description": "a mug",
        "order_id": "order-42",
        "redirect_url": None,
        "cancel_url": None,
        "resolution": None,
        "version": 1,
    }


def test_a_payment_counts_its_confirmations_then_pays_the_invoice() -> None:
    scenario = Scenario(amount="150")
    payment = scenario.pay("150")
    confirming = final_view(scenario.events)
    assert confirming["status"] == "confirming"
    assert confirming["amount_received"] == "150"
    assert confirming["amount_due"] == "0"
    assert confirming["amount_confirmed"] == "0"
    assert confirming["confirmations"] == 1
    assert confirming["payments"] == [
        {
            "payment_id": payment,
            "tx_hash": payment.split(":")[0],
            "amount": "150",
            "status": "confirming",
            "confirmations": 1,
            "required_confirmations": 12,
        }
    ]
    scenario.confirmations(payment, 7)
    assert final_view(scenario.events)["confirmations"] == 7
    scenario.confirmations(payment, 12)
    paid = final_view(scenario.events)
    assert paid["status"] == "paid"
    assert paid["amount_confirmed"] == "150"
    assert paid["confirmations"] == 12
    assert paid["payments"][0]["status"] == "confirmed"
    assert paid["paid_at"] == scenario.events[-1].occurred_at.isoformat().replace("+00:00", "Z")
    assert is_settled(paid)


def test_every_change_is_published_once_with_a_version_one_above_the_last() -> None:
    _, published = fold(paid_in_full().events)
    assert [view["version"] for view in published] == list(range(1, len(published) + 1))
    assert published[0]["status"] == "pending"
    assert published[-1]["status"] == "paid"
    # Consecutive views always differ in something the customer sees.
    for before, after in itertools.pairwise(published):
        assert {**before, "version": 0} != {**after, "version": 0}


def test_a_redelivered_event_changes_nothing() -> None:
    events = paid_in_full().events
    twice = [event for event in events for _ in range(2)]
    assert final_view(twice) == final_view(events)
    state, _ = fold(events)
    for event in events:
        assert apply_event(state, event) is None


def test_an_event_older_than_what_was_applied_is_ignored() -> None:
    scenario = paid_in_full()
    state, _ = fold(scenario.events)
    invoice_created, first_payment_event = scenario.events[0], scenario.events[1]
    assert apply_event(state, invoice_created) is None
    assert apply_event(state, first_payment_event) is None
    assert render_view(state, token_contract=CONTRACT)["status"] == "paid"  # type: ignore[index]


def test_payment_events_before_the_invoice_are_held_and_appear_with_it() -> None:
    scenario = Scenario(amount="150")
    payment = scenario.pay("100")
    created, rest = scenario.events[0], scenario.events[1:]
    payment_only = [event for event in rest if event.aggregate_type == "payment"]
    state, published = fold(payment_only)
    assert published == []
    assert render_view(state) is None
    applied = apply_event(state, created, token_contract=CONTRACT)
    assert applied is not None and applied.view is not None
    assert [p["payment_id"] for p in applied.view["payments"]] == [payment]
    assert applied.view["payments"][0]["status"] == "confirming"
    # The invoice's own progress (amounts) arrives with its later events.
    assert applied.view["status"] == "pending"
    assert final_view([*payment_only, created, *rest])["status"] == "confirming"


def test_settlement_events_are_not_for_customers() -> None:
    scenario = paid_in_full()
    command = CreateSettlement(
        command_id="settle-1",
        invoice_id=scenario.invoice_id,
        merchant_id="mer_1",
        gross_amount=usdt("150"),
        fee_percentage=Decimal("1"),
        created_at=T0 + timedelta(minutes=5),
    )
    _, settlement_events = handle_settlement(None, command)
    state, _ = fold(scenario.events)
    for event in settlement_events:
        assert apply_event(state, event) is None
        assert apply_event(None, event) is None


def test_underpaid_then_topped_up_shows_the_amount_still_due() -> None:
    scenario = Scenario(amount="150")
    first = scenario.pay("100")
    view = final_view(scenario.events)
    assert (view["status"], view["payment_exception"]) == ("confirming", "underpaid")
    assert (view["amount_received"], view["amount_due"]) == ("100", "50")
    second = scenario.pay("60", n=2, block=1_010)
    scenario.confirmations(first, 20)
    scenario.confirmations(second, 10)
    view = final_view(scenario.events)
    assert view["payment_exception"] == "overpaid"
    assert view["amount_due"] == "0"
    # The first payment is confirmed; the customer now waits on the second one.
    assert [p["status"] for p in view["payments"]] == ["confirmed", "confirming"]
    assert view["confirmations"] == 10
    scenario.confirmations(second, 12)
    view = final_view(scenario.events)
    assert (view["status"], view["payment_exception"]) == ("paid", "overpaid")
    assert view["amount_confirmed"] == "160"


def test_expired_then_paid_late_keeps_the_status_and_flags_the_payment() -> None:
    scenario = Scenario(amount="150")
    scenario.expire()
    expired = final_view(scenario.events)
    assert expired["status"] == "expired"
    assert is_settled(expired)
    payment = scenario.pay("150")
    late = final_view(scenario.events)
    assert (late["status"], late["payment_exception"]) == ("expired", "paid_late")
    assert late["payments"][0]["payment_id"] == payment
    assert not is_settled(late)  # its payment is still confirming


def test_cancelled_invoice() -> None:
    scenario = Scenario(amount="150")
    scenario.cancel()
    view = final_view(scenario.events)
    assert view["status"] == "cancelled"
    assert view["amount_due"] == "150"
    assert is_settled(view)


def test_an_orphaned_payment_stops_counting_and_a_failed_one_is_shown_failed() -> None:
    scenario = Scenario(amount="150")
    first = scenario.pay("150")
    scenario.orphan(first)
    view = final_view(scenario.events)
    assert view["payments"][0]["status"] == "orphaned"
    assert view["payments"][0]["confirmations"] == 0
    assert view["amount_received"] == "0"
    assert view["amount_due"] == "150"
    second = scenario.pay("150", n=2)
    scenario.fail(second)
    view = final_view(scenario.events)
    assert [p["status"] for p in view["payments"]] == ["orphaned", "failed"]
    assert view["status"] == "confirming"


def test_a_final_invoice_waits_on_no_orphaned_payment_it_was_decided_without() -> None:
    """A reorg dropped the transfer that paid it for good, and the customer paid again: the page
    ends at paid (its stream closes after the linger), not waiting on the orphan for ever."""
    scenario = Scenario(amount="150")
    first = scenario.pay("150")
    scenario.confirmations(first, 12)
    scenario.orphan(first)
    reopened = final_view(scenario.events)
    assert reopened["status"] == "confirming"
    assert not is_settled(reopened)
    second = scenario.pay("150", n=2)
    scenario.confirmations(second, 6)
    assert not is_settled(final_view(scenario.events))
    scenario.confirmations(second, 12)
    paid = final_view(scenario.events)
    assert paid["status"] == "paid"
    assert [p["status"] for p in paid["payments"]] == ["orphaned", "confirmed"]
    assert is_settled(paid)


def test_covered_event_types() -> None:
    scenario = Scenario(amount="150")
    first = scenario.pay("100")
    scenario.orphan(first)
    second = scenario.pay("100", n=2)
    scenario.fail(second)
    third = scenario.pay("150", n=3)
    scenario.confirmations(third, 12)
    seen = {event.event_type for event in scenario.events}
    seen |= {event.event_type for event in Scenario(invoice_id="inv_x").expire()}
    seen |= {event.event_type for event in Scenario(invoice_id="inv_y").cancel()}
    assert seen == {
        "InvoiceCreated",
        "InvoicePaymentDetected",
        "InvoicePaymentConfirmed",
        "InvoicePaymentReverted",
        "InvoicePaid",
        "InvoiceExpired",
        "InvoiceCancelled",
        "PaymentDetected",
        "PaymentConfirmationsUpdated",
        "PaymentConfirmed",
        "PaymentOrphaned",
        "PaymentFailed",
    }
    view = final_view(scenario.events)
    assert [p["status"] for p in view["payments"]] == ["orphaned", "failed", "confirmed"]
    assert view["status"] == "paid"


def test_state_ttl_follows_the_status() -> None:
    scenario = Scenario(amount="150")
    state, _ = fold(scenario.events)
    assert state is not None and state_ttl(state) == OPEN_VIEW_TTL
    scenario.expire()
    state, _ = fold(scenario.events)
    assert state is not None and state_ttl(state) == FINAL_VIEW_TTL
    payment_scenario = Scenario(amount="150")
    payment_scenario.pay("1")
    held, _ = fold(e for e in payment_scenario.events if e.aggregate_type == "payment")
    assert held is not None and state_ttl(held) == HELD_STATE_TTL


# --- properties over whole histories -----------------------------------------------------------


def rich_history() -> Scenario:
    scenario = Scenario(amount="150")
    first = scenario.pay("100")
    scenario.confirmations(first, 4)
    scenario.orphan(first)
    second = scenario.pay("30", n=2, block=1_003)
    third = scenario.pay("40", n=3, block=1_004)
    scenario.fail(second)
    scenario.confirmations(third, 12)
    return scenario


def interleavings(events: Sequence[DomainEvent]) -> st.SearchStrategy[list[DomainEvent]]:
    """Orders a consumer can see: each aggregate's events in order (one partition each), the
    aggregates interleaved anyhow, and any event possibly redelivered later."""
    by_aggregate: dict[str, list[DomainEvent]] = {}
    for event in events:
        by_aggregate.setdefault(event.aggregate_id, []).append(event)
    streams = list(by_aggregate.values())
    tags = [i for i, stream in enumerate(streams) for _ in stream]

    @st.composite
    def build(draw: st.DrawFn) -> list[DomainEvent]:
        order = draw(st.permutations(tags))
        cursors = [0] * len(streams)
        merged: list[DomainEvent] = []
        for tag in order:
            merged.append(streams[tag][cursors[tag]])
            cursors[tag] += 1
        redelivered = draw(st.lists(st.sampled_from(list(events)), max_size=6))
        for event in redelivered:
            merged.insert(draw(st.integers(0, len(merged))), event)
        return merged

    return build()


def comparable(view: View) -> View:
    return {
        **view,
        "version": None,
        "payments": sorted(view["payments"], key=lambda p: p["payment_id"]),
    }


HISTORIES = {"rich": rich_history(), "paid": paid_in_full()}


@pytest.mark.parametrize("name", HISTORIES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_delivery_order_ends_in_the_same_view(name: str, data: st.DataObject) -> None:
    events = HISTORIES[name].events
    expected = comparable(final_view(events))
    delivered = data.draw(interleavings(events))
    assert comparable(final_view(delivered)) == expected
    _, published = fold(delivered)
    versions = [view["version"] for view in published]
    assert versions == list(range(1, len(versions) + 1))


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_no_view_ever_has_a_fee_field_at_any_depth(data: st.DataObject) -> None:
    delivered = data.draw(interleavings(rich_history().events))
    _, published = fold(delivered)
    assert published
    for view in published:
        assert not [key for key in keys_anywhere(view) if "fee" in key.lower()]
