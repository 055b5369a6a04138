"""The business metrics' own logic: the independent fee check and the payment confirmation clock.

app/services/business_metrics.py; how the settlement agent moves them is
tests/component/monitoring/test_settlement_metrics.py.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from app.domain.events import (
    DomainEvent,
    InvoicePaid,
    InvoicePaymentDetected,
    InvoiceResolved,
    InvoiceResolvedData,
)
from app.domain.fees import split_fee
from app.domain.money import MAX_AMOUNT
from app.services import business_metrics
from app.services.business_metrics import (
    PaymentConfirmationClock,
    expected_fee,
    fee_is_right,
    settlement_completed,
)
from tests.unit.domain.factories import new_settlement, usdt
from tests.unit.live.scenario import Scenario

pytestmark = pytest.mark.unit

CONFIRMATION = "checkout_payment_confirmation_seconds"


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def paid_scenario(invoice_id: str) -> Scenario:
    scenario = Scenario(invoice_id=invoice_id, amount="9.99")
    payment = scenario.pay("9.99")
    scenario.confirmations(payment, scenario.required)
    return scenario


def first(events: list[DomainEvent], kind: type[DomainEvent]) -> DomainEvent:
    return next(event for event in events if isinstance(event, kind))


@given(
    gross=st.integers(min_value=0, max_value=MAX_AMOUNT),
    basis_points=st.integers(min_value=0, max_value=10_000),
)
def test_the_independent_fee_agrees_with_the_domain_split(gross: int, basis_points: int) -> None:
    percentage = Decimal(basis_points).scaleb(-2)
    assert expected_fee(gross, percentage) == split_fee(gross, percentage).platform_fee_amount


def test_the_seed_example_and_the_cap_at_the_gross() -> None:
    assert expected_fee(usdt("9.99"), Decimal("1")) == usdt("0.10")  # 0.0999 half-up
    assert expected_fee(5_000, Decimal("100")) == 5_000  # 0.005 rounds to 0.01: capped


def test_a_settlement_that_splits_as_asked_matches_and_a_tampered_one_does_not() -> None:
    settlement = new_settlement(gross_amount=usdt("9.99"), fee_percentage=Decimal("1"))
    assert fee_is_right(settlement, usdt("9.99"), Decimal("1"))
    assert not fee_is_right(settlement, usdt("9.99"), Decimal("1.5"))  # not the invoice's rate
    assert not fee_is_right(settlement, usdt("10"), Decimal("1"))  # not the gross paid
    tampered = settlement.model_copy(update={"platform_fee_amount": usdt("0.09")})
    assert not fee_is_right(tampered, usdt("9.99"), Decimal("1"))
    short = settlement.model_copy(update={"net_amount": settlement.net_amount - 1})
    assert not fee_is_right(short, usdt("9.99"), Decimal("1"))


def test_a_completed_settlement_counts_its_volume_and_its_fee_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settlement = new_settlement(gross_amount=usdt("9.99"), fee_percentage=Decimal("1"))
    before = {
        "completed": sample("checkout_settlements_completed_total"),
        "gross": sample("checkout_settled_usdt_total"),
        "fees": sample("checkout_platform_fees_usdt_total"),
        "match": sample("checkout_settlement_fee_checks_total", {"result": "match"}),
        "mismatch": sample("checkout_settlement_fee_checks_total", {"result": "mismatch"}),
    }
    settlement_completed(settlement, usdt("9.99"), Decimal("1"))
    settlement_completed(settlement, usdt("9.99"), Decimal("2"))  # not what it was asked

    assert sample("checkout_settlements_completed_total") == before["completed"] + 2
    assert sample("checkout_settled_usdt_total") == pytest.approx(before["gross"] + 2 * 9.99)
    assert sample("checkout_platform_fees_usdt_total") == pytest.approx(before["fees"] + 0.2)
    assert sample("checkout_settlement_fee_checks_total", {"result": "match"}) == (
        before["match"] + 1
    )
    assert sample("checkout_settlement_fee_checks_total", {"result": "mismatch"}) == (
        before["mismatch"] + 1
    )
    assert f"settlement {settlement.settlement_id} of invoice" in caplog.text


def test_a_metric_that_fails_never_fails_the_settlement(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**_: str) -> None:
        raise RuntimeError("registry trouble")

    monkeypatch.setattr(business_metrics.FEE_CHECKS, "labels", broken)
    settlement_completed(new_settlement(), usdt("9.99"), Decimal("1"))  # no exception

    clock = PaymentConfirmationClock()
    monkeypatch.setattr(clock, "_observe", lambda event: 1 / 0)
    clock.observe(first(paid_scenario("inv_clock_broken").events, InvoicePaid))  # no exception


def later(event: DomainEvent, seconds: float) -> DomainEvent:
    """``event`` stamped ``seconds`` later (the scenario's invoices need one confirmation)."""
    return event.model_copy(update={"occurred_at": event.occurred_at + timedelta(seconds=seconds)})


def test_the_clock_times_from_the_first_payments_block_to_paid_once() -> None:
    events = paid_scenario("inv_clock_1").events
    paid = later(first(events, InvoicePaid), 42)
    clock = PaymentConfirmationClock()
    count = sample(f"{CONFIRMATION}_count")
    total = sample(f"{CONFIRMATION}_sum")

    for event in events:
        clock.observe(paid if isinstance(event, InvoicePaid) else event)
    clock.observe(paid)  # redelivered: measured once

    assert sample(f"{CONFIRMATION}_count") == count + 1
    assert sample(f"{CONFIRMATION}_sum") == pytest.approx(total + 42)
    assert len(clock) == 0


def test_the_clock_keeps_the_first_payment_of_an_invoice_paid_in_two() -> None:
    scenario = Scenario(invoice_id="inv_clock_2", amount="10")
    scenario.pay("4", n=1)
    scenario.pay("6", n=2, block=1_010)
    first_seen, second_seen = (
        event for event in scenario.events if isinstance(event, InvoicePaymentDetected)
    )
    clock = PaymentConfirmationClock()
    clock.observe(first_seen)
    clock.observe(later(second_seen, 30))
    assert clock._first_payment_at == {"inv_clock_2": first_seen.occurred_at}

    total = sample(f"{CONFIRMATION}_sum")
    clock.observe(later(first(scenario.events, InvoicePaid), 90))
    assert sample(f"{CONFIRMATION}_sum") == pytest.approx(total + 90)  # from the first payment


def test_an_invoice_expired_or_cancelled_after_a_payment_is_not_measured() -> None:
    expired = Scenario(invoice_id="inv_clock_3", amount="10")
    expired.pay("4")
    expired.expire()
    cancelled = Scenario(invoice_id="inv_clock_4", amount="10")
    cancelled.pay("4")
    clock = PaymentConfirmationClock()
    for event in [*expired.events, *cancelled.events]:
        clock.observe(event)
    assert "inv_clock_3" not in clock._first_payment_at
    assert "inv_clock_4" in clock._first_payment_at  # a seen payment cannot be cancelled
    assert len(clock) == 1

    expired.pay("6", n=2, block=1_010)  # after expiry: late, nobody waits for it
    for event in expired.events:
        clock.observe(event)
    assert "inv_clock_3" not in clock._first_payment_at


def resolved(detected: DomainEvent, *, by: str, action: str) -> InvoiceResolved:
    assert isinstance(detected, InvoicePaymentDetected)
    progress = detected.data.model_dump(include=set(InvoiceResolvedData.model_fields) - {"action"})
    return InvoiceResolved.record(
        aggregate_id=detected.aggregate_id,
        aggregate_version=detected.aggregate_version + 1,
        merchant_id=detected.merchant_id,
        causation_id=f"resolve:{by}:{action}",
        occurred_at=detected.occurred_at + timedelta(minutes=1),
        data=InvoiceResolvedData(**progress, action=action, resolved_by=by),
    )


def test_a_merchants_resolution_stops_the_clock_the_tolerance_does_not() -> None:
    merchant = Scenario(invoice_id="inv_clock_5", amount="10")
    merchant.pay("9")
    tolerance = Scenario(invoice_id="inv_clock_6", amount="10")
    tolerance.pay("9.99")
    clock = PaymentConfirmationClock()
    for scenario, by in ((merchant, "merchant"), (tolerance, "tolerance")):
        for event in scenario.events:
            clock.observe(event)
        clock.observe(
            resolved(first(scenario.events, InvoicePaymentDetected), by=by, action="accept")
        )
    assert list(clock._first_payment_at) == ["inv_clock_6"]


def test_the_clock_forgets_the_oldest_invoices_beyond_its_capacity() -> None:
    clock = PaymentConfirmationClock(capacity=2)
    for n in range(3):
        scenario = Scenario(invoice_id=f"inv_clock_cap_{n}", amount="10")
        scenario.pay("4")
        for event in scenario.events:
            clock.observe(event)
    assert list(clock._first_payment_at) == ["inv_clock_cap_1", "inv_clock_cap_2"]
