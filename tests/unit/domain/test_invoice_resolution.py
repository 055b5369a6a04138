"""Resolving an underpaid invoice (app/domain/invoice.py ``ResolveInvoice``): accept what was
received, refund it, or extend the deadline; and the merchant's tolerance at expiry."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.domain.commands import ExpireInvoice, ResolveInvoice
from app.domain.errors import InvalidExpiry, InvoiceNotUnderpaid
from app.domain.events import InvoiceExpired, InvoicePaid, InvoiceResolved
from app.domain.invoice import Invoice, handle_invoice
from app.domain.statuses import InvoiceStatus, PaymentException

from .factories import (
    AFTER_EXPIRY,
    EXPIRES_AT,
    INVOICE_ID,
    confirmed,
    detected,
    expire,
    fresh_id,
    new_invoice,
    run_invoice,
    usdt,
)

pytestmark = pytest.mark.unit

CUSTOMER = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
LATER = AFTER_EXPIRY + timedelta(minutes=5)


def resolve(action: str, **fields: Any) -> ResolveInvoice:
    return ResolveInvoice(
        command_id=fields.pop("command_id", fresh_id("resolve")),
        invoice_id=INVOICE_ID,
        action=action,  # type: ignore[arg-type]
        resolved_at=fields.pop("resolved_at", LATER),
        **fields,
    )


def underpaid_and_expired(received: str = "7", confirmed_too: bool = True) -> Invoice:
    invoice = new_invoice(amount=usdt("10"))
    steps: list[Any] = [detected("p1", usdt(received))]
    if confirmed_too:
        steps.append(confirmed("p1", usdt(received)))
    return run_invoice(invoice, *steps, expire())


def test_accept_pays_the_invoice_for_what_was_received() -> None:
    invoice, events = handle_invoice(underpaid_and_expired(), resolve("accept"))
    resolved, paid = events
    assert isinstance(resolved, InvoiceResolved) and isinstance(paid, InvoicePaid)
    assert (resolved.data.action, resolved.data.resolved_by) == ("accept", "merchant")
    assert paid.data.status is InvoiceStatus.PAID
    assert paid.data.amount_confirmed == usdt("7")  # what the settlement takes as gross
    assert paid.data.payment_exception is PaymentException.UNDERPAID  # still visible
    assert invoice.status is InvoiceStatus.PAID and invoice.resolution == "accept"
    assert Invoice.replay(invoice.history) == invoice


def test_refund_closes_the_invoice_and_names_the_refund_of_everything_received() -> None:
    open_underpaid = run_invoice(
        new_invoice(amount=usdt("10")), detected("p1", usdt("4")), confirmed("p1", usdt("4"))
    )
    assert open_underpaid.status is InvoiceStatus.CONFIRMING
    command = resolve("refund", refund_id="rf_1", refund_address=CUSTOMER, resolved_at=EXPIRES_AT)
    invoice, (event,) = handle_invoice(open_underpaid, command)
    assert isinstance(event, InvoiceResolved)
    assert (event.data.refund_id, event.data.refund_address, event.data.refund_amount) == (
        "rf_1",
        CUSTOMER,
        usdt("4"),
    )
    assert invoice.status is InvoiceStatus.EXPIRED and invoice.resolution == "refund"
    # Refunded once: no second resolution, and money arriving now is late.
    with pytest.raises(InvoiceNotUnderpaid, match="refunded"):
        handle_invoice(invoice, resolve("accept"))
    later = run_invoice(invoice, detected("p2", usdt("1")))
    assert later.payments["p2"].late


def test_extend_reopens_the_invoice_until_the_new_deadline_and_a_top_up_pays_it() -> None:
    expired = underpaid_and_expired("7", confirmed_too=True)
    late = run_invoice(expired, detected("p-late", usdt("1")))  # arrived while expired
    assert late.payment_exception is PaymentException.PAID_LATE
    deadline = LATER + timedelta(hours=1)
    extended, (event,) = handle_invoice(late, resolve("extend", expires_at=deadline))
    assert isinstance(event, InvoiceResolved) and event.data.expires_at == deadline
    assert extended.status is InvoiceStatus.CONFIRMING and extended.expires_at == deadline
    # What arrived while it was expired counts towards it now: 8 of 10, 2 due.
    assert extended.payment_exception is PaymentException.UNDERPAID
    assert extended.amount_due == usdt("2") and extended.extensions == 1
    topped_up = run_invoice(
        extended,
        confirmed("p-late", usdt("1")),
        detected("p-top", usdt("2")),
        confirmed("p-top", usdt("2")),
    )
    assert topped_up.status is InvoiceStatus.PAID
    assert topped_up.history[-1].data.amount_confirmed == usdt("10")  # type: ignore[attr-defined]


def test_an_extended_invoice_expires_again_at_its_new_deadline() -> None:
    deadline = LATER + timedelta(hours=1)
    extended = run_invoice(underpaid_and_expired(), resolve("extend", expires_at=deadline))
    again = ExpireInvoice.at(INVOICE_ID, deadline, extended.extensions)
    assert again.command_id != ExpireInvoice.at(INVOICE_ID, deadline).command_id
    expired, events = handle_invoice(extended, again)
    assert [type(e) for e in events] == [InvoiceExpired]
    assert expired.status is InvoiceStatus.EXPIRED


@pytest.mark.parametrize(
    ("invoice", "command", "error"),
    [
        (lambda: new_invoice(amount=usdt("10")), resolve("accept"), InvoiceNotUnderpaid),
        (
            lambda: run_invoice(
                new_invoice(amount=usdt("10")),
                detected("p", usdt("10")),
                confirmed("p", usdt("10")),
            ),
            resolve("accept"),
            InvoiceNotUnderpaid,
        ),
        (
            lambda: underpaid_and_expired(confirmed_too=False),
            resolve("accept"),
            InvoiceNotUnderpaid,
        ),
        (
            lambda: underpaid_and_expired(confirmed_too=False),
            resolve("refund", refund_id="rf_2", refund_address=CUSTOMER),
            InvoiceNotUnderpaid,
        ),
    ],
)
def test_only_an_underpaid_confirmed_invoice_is_accepted_or_refunded(
    invoice: Any, command: ResolveInvoice, error: type[Exception]
) -> None:
    with pytest.raises(error):
        handle_invoice(invoice(), command)


def test_an_extension_needs_a_deadline_in_the_future() -> None:
    with pytest.raises(InvalidExpiry):
        resolve("extend", expires_at=LATER - timedelta(seconds=1))
    with pytest.raises(ValueError, match="refund"):
        resolve("refund")
    # Unconfirmed money is no obstacle to waiting longer for the rest.
    extended, _ = handle_invoice(
        underpaid_and_expired(confirmed_too=False),
        resolve("extend", expires_at=LATER + timedelta(minutes=10)),
    )
    assert extended.status is InvoiceStatus.CONFIRMING


def test_the_same_resolution_again_yields_the_same_events() -> None:
    command = resolve("accept", command_id="resolve:inv_1:key-1")
    invoice, events = handle_invoice(underpaid_and_expired(), command)
    again, repeated = handle_invoice(invoice, command)
    assert repeated == events and again == invoice


@pytest.mark.parametrize(
    ("tolerance", "received", "outcome"),
    [
        ("99.5", "9.95", InvoicePaid),
        ("99.5", "9.94", InvoiceExpired),
        (None, "9.99", InvoiceExpired),
    ],
)
def test_the_merchants_tolerance_accepts_a_near_payment_at_expiry(
    tolerance: str | None, received: str, outcome: type
) -> None:
    invoice = run_invoice(
        new_invoice(
            amount=usdt("10"),
            underpaid_tolerance=None if tolerance is None else Decimal(tolerance),
        ),
        detected("p1", usdt(received)),
        confirmed("p1", usdt(received)),
    )
    after, events = handle_invoice(invoice, expire())
    assert type(events[-1]) is outcome
    if outcome is InvoicePaid:
        resolved = events[0]
        assert isinstance(resolved, InvoiceResolved) and resolved.data.resolved_by == "tolerance"
        assert after.status is InvoiceStatus.PAID


def test_an_invoice_paid_in_full_after_expiry_is_accepted_or_refunded_not_extended() -> None:
    expired = run_invoice(new_invoice(amount=usdt("10")), expire())
    late = run_invoice(expired, detected("p-late", usdt("10")), confirmed("p-late", usdt("10")))
    assert late.payment_exception is PaymentException.PAID_LATE
    with pytest.raises(InvoiceNotUnderpaid, match="nothing is due"):
        handle_invoice(late, resolve("extend", expires_at=LATER + timedelta(hours=1)))
    accepted, (resolved, paid) = handle_invoice(late, resolve("accept"))
    assert isinstance(resolved, InvoiceResolved) and resolved.data.action == "accept"
    assert isinstance(paid, InvoicePaid) and paid.data.amount_confirmed == usdt("10")
    assert accepted.status is InvoiceStatus.PAID
    refunded, (event,) = handle_invoice(
        late, resolve("refund", refund_id="rf_late", refund_address=CUSTOMER)
    )
    assert isinstance(event, InvoiceResolved) and event.data.refund_amount == usdt("10")
    assert refunded.status is InvoiceStatus.EXPIRED
