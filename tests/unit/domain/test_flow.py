"""The three aggregates wired as the agents wire them: payment events drive the invoice, the
paid invoice drives the settlement."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest

from app.domain.events import DomainEvent, InvoicePaid, PaymentConfirmationsUpdated
from app.domain.invoice import Invoice, handle_invoice
from app.domain.payment import handle_payment
from app.domain.policies import command_id_for, invoice_command_for, settlement_command_for
from app.domain.settlement import handle_settlement
from app.domain.statuses import InvoiceStatus, PaymentException, SettlementStatus

from .factories import BLOCK, block_id, detect, fail_payment, head, new_invoice, orphan, usdt

pytestmark = pytest.mark.unit


def feed_invoice(
    invoice: Invoice, payment_events: Sequence[DomainEvent]
) -> tuple[Invoice, list[DomainEvent]]:
    emitted: list[DomainEvent] = []
    for event in payment_events:
        command = invoice_command_for(event)
        if command is not None:
            invoice, events = handle_invoice(invoice, command)
            emitted.extend(events)
    return invoice, emitted


def test_a_payment_confirmed_on_chain_pays_the_invoice_and_settles_it() -> None:
    invoice = new_invoice(amount=usdt("9.99"), fee_percentage=Decimal("1"))
    payment, events = handle_payment(
        None, detect(amount=usdt("9.99"), required_confirmations=invoice.required_confirmations)
    )
    assert payment.status.value == "confirmed"  # 9.99 USDT needs one confirmation
    invoice, invoice_events = feed_invoice(invoice, events)
    assert invoice.status is InvoiceStatus.PAID

    paid = invoice_events[-1]
    assert isinstance(paid, InvoicePaid)
    create = settlement_command_for(paid)
    assert create is not None
    settlement, _ = handle_settlement(None, create)
    assert settlement.status is SettlementStatus.PENDING
    assert settlement.invoice_id == invoice.invoice_id
    assert settlement.to_dict()["gross_amount"] == "9.99"
    assert settlement.to_dict()["platform_fee_amount"] == "0.1"
    assert settlement.to_dict()["net_amount"] == "9.89"
    # The settlement agent sees InvoicePaid again: the same command, the same settlement.
    again = settlement_command_for(paid)
    assert again == create
    assert handle_settlement(settlement, again)[0] == settlement


def test_a_reorg_takes_the_money_back_until_the_transfer_is_included_again() -> None:
    invoice = new_invoice(amount=usdt("500"))
    assert invoice.required_confirmations == 12
    payment, detected = handle_payment(
        None, detect(amount=usdt("500"), required_confirmations=invoice.required_confirmations)
    )
    invoice, _ = feed_invoice(invoice, detected)
    assert (invoice.status, invoice.amount_due) == (InvoiceStatus.CONFIRMING, 0)

    payment, orphaned = handle_payment(payment, orphan())
    invoice, _ = feed_invoice(invoice, orphaned)
    assert (invoice.status, invoice.amount_received, invoice.amount_due) == (
        InvoiceStatus.CONFIRMING,
        0,
        usdt("500"),
    )

    new_block = BLOCK + 2
    payment, redetected = handle_payment(
        payment,
        detect(
            amount=usdt("500"),
            block_number=new_block,
            block_id=block_id(new_block),
            required_confirmations=12,
        ),
    )
    payment, confirmed = handle_payment(payment, head(new_block + 11))
    invoice, _ = feed_invoice(invoice, redetected + confirmed)
    assert invoice.status is InvoiceStatus.PAID
    assert invoice.amount_confirmed == usdt("500")
    assert invoice.payment_exception is None


def test_payment_events_are_fed_once_even_when_redelivered() -> None:
    invoice = new_invoice(amount=usdt("20"))
    _, events = handle_payment(None, detect(amount=usdt("5"), required_confirmations=1))
    invoice, first = feed_invoice(invoice, events)
    again, second = feed_invoice(invoice, events)
    assert again == invoice
    assert second == first
    assert invoice.amount_confirmed == usdt("5")
    assert invoice.payment_exception is PaymentException.UNDERPAID


def test_a_failed_payment_is_taken_off_the_invoice() -> None:
    invoice = new_invoice(amount=usdt("500"))
    payment, detected = handle_payment(None, detect(amount=usdt("500")))
    invoice, _ = feed_invoice(invoice, detected)
    _, failed = handle_payment(payment, fail_payment())
    invoice, emitted = feed_invoice(invoice, failed)
    assert [event.event_type for event in emitted] == ["InvoicePaymentReverted"]
    assert invoice.amount_received == 0


def test_events_the_other_side_does_not_need_map_to_nothing() -> None:
    _, events = handle_payment(None, detect())
    counted = [event for event in events if isinstance(event, PaymentConfirmationsUpdated)]
    assert counted
    assert invoice_command_for(counted[0]) is None
    assert settlement_command_for(counted[0]) is None
    assert command_id_for(events[0]) == f"PaymentDetected:{events[0].event_id}"
