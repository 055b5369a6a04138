"""Properties over random command sequences: state is a fold over events, and handling a
command twice changes nothing and yields the same events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.commands import (
    ApplyPaymentConfirmed,
    ApplyPaymentDetected,
    ApplyPaymentFailed,
    ApplyPaymentOrphaned,
    CancelInvoice,
    ExpireInvoice,
    InvoiceCommand,
    PaymentCommand,
)
from app.domain.errors import CheckoutError
from app.domain.invoice import Invoice, handle_invoice, payment_exception_for
from app.domain.payment import Payment, handle_payment
from app.domain.statuses import InvoiceStatus, PaymentStatus

from .factories import (
    AFTER_EXPIRY,
    BLOCK,
    INVOICE_ID,
    T0,
    block_id,
    detect,
    fail_payment,
    head,
    new_invoice,
    new_payment,
    orphan,
)

pytestmark = pytest.mark.unit

AMOUNT = 10_000_000
payment_ids = st.sampled_from(["p1", "p2", "p3"])
amounts = st.integers(min_value=1, max_value=2 * AMOUNT)


@st.composite
def invoice_commands(draw: st.DrawFn) -> InvoiceCommand:
    # Command ids are drawn from a small pool so that redeliveries happen; a redelivered id
    # always comes with the same command, as in production.
    kind = draw(
        st.sampled_from(["detected", "confirmed", "orphaned", "failed", "cancel", "expire"])
    )
    payment_id = draw(payment_ids)
    amount = draw(amounts)
    n = draw(st.integers(min_value=0, max_value=40))
    command_id = f"{kind}-{payment_id}-{amount}-{n}"
    at = T0 + timedelta(minutes=1)
    if kind == "detected":
        return ApplyPaymentDetected(
            command_id=command_id,
            invoice_id=INVOICE_ID,
            payment_id=payment_id,
            amount=amount,
            detected_at=at,
        )
    if kind == "confirmed":
        return ApplyPaymentConfirmed(
            command_id=command_id,
            invoice_id=INVOICE_ID,
            payment_id=payment_id,
            amount=amount,
            confirmed_at=at,
        )
    if kind == "orphaned":
        return ApplyPaymentOrphaned(
            command_id=command_id, invoice_id=INVOICE_ID, payment_id=payment_id, orphaned_at=at
        )
    if kind == "failed":
        return ApplyPaymentFailed(
            command_id=command_id,
            invoice_id=INVOICE_ID,
            payment_id=payment_id,
            failed_at=at,
            reason="reverted",
        )
    if kind == "cancel":
        return CancelInvoice(command_id=f"cancel-{n}", invoice_id=INVOICE_ID, cancelled_at=at)
    return ExpireInvoice(command_id=f"expire-{n}", invoice_id=INVOICE_ID, expired_at=AFTER_EXPIRY)


def run(invoice: Invoice, commands: list[InvoiceCommand]) -> Invoice:
    for command in commands:
        try:
            invoice, _ = handle_invoice(invoice, command)
        except CheckoutError:
            continue  # refused commands change nothing; the property is about the rest
    return invoice


@settings(max_examples=200)
@given(st.lists(invoice_commands(), max_size=25))
def test_replaying_an_invoices_events_rebuilds_it(commands: list[InvoiceCommand]) -> None:
    invoice = run(new_invoice(amount=AMOUNT), commands)
    assert Invoice.replay(invoice.history) == invoice
    assert Invoice.from_dict(invoice.to_dict()) == invoice
    assert [event.aggregate_version for event in invoice.history] == list(
        range(1, invoice.version + 1)
    )
    assert len({event.event_id for event in invoice.history}) == invoice.version


@settings(max_examples=200)
@given(st.lists(invoice_commands(), max_size=25))
def test_invoice_amounts_and_exception_follow_the_payments(commands: list[InvoiceCommand]) -> None:
    invoice = run(new_invoice(amount=AMOUNT), commands)
    counted = invoice.payments.values()
    assert invoice.amount_received == sum(p.amount for p in counted)
    assert invoice.amount_confirmed == sum(p.amount for p in counted if p.confirmed)
    assert invoice.amount_due == max(0, invoice.amount - invoice.amount_received)
    assert invoice.payment_exception is payment_exception_for(invoice.amount, invoice.payments)
    if invoice.status is InvoiceStatus.PAID:
        assert invoice.amount_confirmed >= invoice.amount
    if invoice.status is InvoiceStatus.PENDING:
        assert invoice.payments == {}


@settings(max_examples=200)
@given(st.lists(invoice_commands(), max_size=20), invoice_commands())
def test_an_invoice_command_handled_twice_changes_nothing_the_second_time(
    commands: list[InvoiceCommand], repeated: InvoiceCommand
) -> None:
    invoice = run(new_invoice(amount=AMOUNT), commands)
    try:
        once, first = handle_invoice(invoice, repeated)
    except CheckoutError as refused:
        with pytest.raises(type(refused)):
            handle_invoice(invoice, repeated)
        return
    twice, second = handle_invoice(once, repeated)
    assert second == first
    assert twice == once
    # And deciding again from the state before (the table write was lost) gives the same ids.
    assert handle_invoice(invoice, repeated) == (once, first)


@st.composite
def payment_commands(draw: st.DrawFn) -> PaymentCommand:
    kind = draw(st.sampled_from(["head", "head", "head", "orphan", "redetect", "fail"]))
    offset = draw(st.integers(min_value=-2, max_value=25))
    if kind == "head":
        return head(BLOCK + offset)
    if kind == "orphan":
        return orphan(block=draw(st.sampled_from([block_id(BLOCK), block_id(BLOCK + 1)])))
    if kind == "redetect":
        block = BLOCK + draw(st.integers(min_value=0, max_value=3))
        return detect(block_number=block, block_id=block_id(block), required_confirmations=12)
    return fail_payment()


def run_payment_commands(payment: Payment, commands: list[PaymentCommand]) -> Payment:
    for command in commands:
        try:
            payment, _ = handle_payment(payment, command)
        except CheckoutError:
            continue
    return payment


@settings(max_examples=200)
@given(st.lists(payment_commands(), max_size=25))
def test_replaying_a_payments_events_rebuilds_it(commands: list[PaymentCommand]) -> None:
    payment = run_payment_commands(new_payment(required_confirmations=12), commands)
    assert Payment.replay(payment.history) == payment
    assert Payment.from_dict(payment.to_dict()) == payment
    if payment.status is PaymentStatus.CONFIRMED:
        assert payment.confirmations >= payment.required_confirmations
    if payment.status is PaymentStatus.CONFIRMING:
        assert 1 <= payment.confirmations < payment.required_confirmations


@settings(max_examples=200)
@given(st.lists(payment_commands(), max_size=20), payment_commands())
def test_a_duplicate_observation_is_a_no_op_that_yields_the_same_events(
    commands: list[PaymentCommand], repeated: PaymentCommand
) -> None:
    payment = run_payment_commands(new_payment(required_confirmations=12), commands)
    try:
        once, first = handle_payment(payment, repeated)
    except CheckoutError:
        return
    twice, second = handle_payment(once, repeated)
    assert second == first
    assert twice == once
