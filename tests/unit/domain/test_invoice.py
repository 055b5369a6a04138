from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.domain.commands import CreateInvoice, ExpireInvoice, InvoiceCommand
from app.domain.errors import (
    AggregateMismatch,
    AlreadyExists,
    CheckoutError,
    EventOutOfOrder,
    InvalidConfirmations,
    InvalidExpiry,
    InvalidTransition,
    InvoiceNotDue,
    InvoiceNotFound,
    PaymentAlreadyConfirmed,
)
from app.domain.events import InvoiceCreated, InvoicePaid, InvoicePaymentReverted
from app.domain.invoice import REINCLUSION_WINDOW, Invoice, handle_invoice, shop_link
from app.domain.statuses import INVOICE_TRANSITIONS, InvoiceStatus, PaymentException

from .factories import (
    AFTER_EXPIRY,
    EXPIRES_AT,
    INVOICE_ID,
    T0,
    cancel,
    confirmed,
    create_invoice,
    detected,
    expire,
    failed,
    fresh_id,
    new_invoice,
    orphaned,
    run_invoice,
    usdt,
)

pytestmark = pytest.mark.unit

AMOUNT = usdt("10")
PENDING, CONFIRMING, PAID, EXPIRED, CANCELLED = (
    InvoiceStatus.PENDING,
    InvoiceStatus.CONFIRMING,
    InvoiceStatus.PAID,
    InvoiceStatus.EXPIRED,
    InvoiceStatus.CANCELLED,
)


def invoice_in(status: InvoiceStatus | None) -> Invoice | None:
    """An invoice of 10 USDT in ``status``; confirming is underpaid (4 of 10 seen, unconfirmed)."""
    if status is None:
        return None
    invoice = new_invoice(amount=AMOUNT)
    steps: dict[InvoiceStatus, list[InvoiceCommand]] = {
        PENDING: [],
        CONFIRMING: [detected("p-partial", usdt("4"))],
        PAID: [detected("p-full", AMOUNT), confirmed("p-full", AMOUNT)],
        EXPIRED: [expire()],
        CANCELLED: [cancel()],
    }
    return run_invoice(invoice, *steps[status])


COMMANDS: dict[str, Callable[[], InvoiceCommand]] = {
    "create": lambda: create_invoice(amount=AMOUNT),
    "cancel": cancel,
    "expire": expire,
    "payment_detected": lambda: detected("p-new", usdt("3")),
    "payment_confirmed_in_full": lambda: confirmed("p-new", AMOUNT),
    "payment_orphaned": lambda: orphaned("p-partial"),
    "payment_failed": lambda: failed("p-partial"),
}

# (status before, command) → status after, or the error. Every pair is listed.
MATRIX: dict[tuple[InvoiceStatus | None, str], InvoiceStatus | type[CheckoutError]] = {
    (None, "create"): PENDING,
    (None, "cancel"): InvoiceNotFound,
    (None, "expire"): InvoiceNotFound,
    (None, "payment_detected"): InvoiceNotFound,
    (None, "payment_confirmed_in_full"): InvoiceNotFound,
    (None, "payment_orphaned"): InvoiceNotFound,
    (None, "payment_failed"): InvoiceNotFound,
    (PENDING, "create"): AlreadyExists,
    (PENDING, "cancel"): CANCELLED,
    (PENDING, "expire"): EXPIRED,
    (PENDING, "payment_detected"): CONFIRMING,
    (PENDING, "payment_confirmed_in_full"): PAID,
    (PENDING, "payment_orphaned"): PENDING,
    (PENDING, "payment_failed"): PENDING,
    (CONFIRMING, "create"): AlreadyExists,
    (CONFIRMING, "cancel"): InvalidTransition,
    (CONFIRMING, "expire"): EXPIRED,
    (CONFIRMING, "payment_detected"): CONFIRMING,
    (CONFIRMING, "payment_confirmed_in_full"): PAID,
    (CONFIRMING, "payment_orphaned"): CONFIRMING,
    (CONFIRMING, "payment_failed"): CONFIRMING,
    (PAID, "create"): AlreadyExists,
    (PAID, "cancel"): InvalidTransition,
    (PAID, "expire"): InvalidTransition,
    (PAID, "payment_detected"): PAID,
    (PAID, "payment_confirmed_in_full"): PAID,
    (PAID, "payment_orphaned"): PAID,
    (PAID, "payment_failed"): PAID,
    (EXPIRED, "create"): AlreadyExists,
    (EXPIRED, "cancel"): InvalidTransition,
    (EXPIRED, "expire"): InvalidTransition,
    (EXPIRED, "payment_detected"): EXPIRED,
    (EXPIRED, "payment_confirmed_in_full"): EXPIRED,
    (EXPIRED, "payment_orphaned"): EXPIRED,
    (EXPIRED, "payment_failed"): EXPIRED,
    (CANCELLED, "create"): AlreadyExists,
    (CANCELLED, "cancel"): InvalidTransition,
    (CANCELLED, "expire"): InvalidTransition,
    (CANCELLED, "payment_detected"): CANCELLED,
    (CANCELLED, "payment_confirmed_in_full"): CANCELLED,
    (CANCELLED, "payment_orphaned"): CANCELLED,
    (CANCELLED, "payment_failed"): CANCELLED,
}


def test_the_matrix_lists_every_status_and_command_pair() -> None:
    statuses: list[InvoiceStatus | None] = [None, *InvoiceStatus]
    assert set(MATRIX) == {(status, name) for status in statuses for name in COMMANDS}


@pytest.mark.parametrize(("before", "command"), list(MATRIX))
def test_invoice_state_machine(before: InvoiceStatus | None, command: str) -> None:
    expected = MATRIX[(before, command)]
    invoice = invoice_in(before)
    if isinstance(expected, type):
        with pytest.raises(expected):
            handle_invoice(invoice, COMMANDS[command]())
        return
    after, _ = handle_invoice(invoice, COMMANDS[command]())
    assert after.status is expected
    assert Invoice.replay(after.history) == after
    # Every status change on the way is an edge of the one transition table.
    walk = [Invoice.replay(after.history[:n]) for n in range(1, len(after.history) + 1)]
    for previous, following in itertools.pairwise(walk):
        if following.status is not previous.status:
            assert following.status in INVOICE_TRANSITIONS[previous.status]


def test_invalid_transition_names_the_current_status_and_the_allowed_ones() -> None:
    paid = invoice_in(PAID)
    with pytest.raises(InvalidTransition) as caught:
        handle_invoice(paid, cancel())
    error = caught.value
    assert error.code == "invalid_transition"
    assert (error.current, error.target, error.allowed) == ("paid", "cancelled", ("confirming",))
    assert "inv_1 is paid" in error.message
    with pytest.raises(InvalidTransition, match=r"allowed from confirming: expired, paid"):
        handle_invoice(invoice_in(CONFIRMING), cancel())


def test_creation_fixes_confirmations_fee_and_amounts() -> None:
    invoice = new_invoice(amount=usdt("150"), fee_percentage=Decimal("2.5"))
    assert invoice.status is PENDING
    assert invoice.required_confirmations == 12
    assert invoice.fee_percentage == Decimal("2.5")
    assert (invoice.amount_received, invoice.amount_confirmed, invoice.amount_due) == (
        0,
        0,
        usdt("150"),
    )
    assert invoice.payment_exception is None
    assert invoice.currency == "USDT"
    assert invoice.metadata == {"sku": "MUG-1"}
    assert invoice.version == 1


def test_a_merchant_override_sets_required_confirmations() -> None:
    assert new_invoice(amount=usdt("50000"), confirmation_override=3).required_confirmations == 3
    assert (
        new_invoice(amount=usdt("50000"), confirmation_override=None).required_confirmations == 19
    )


def test_an_override_out_of_range_names_the_field() -> None:
    with pytest.raises(InvalidConfirmations) as caught:
        create_invoice(confirmation_override=101)
    assert caught.value.param == "confirmation_override"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"expires_at": T0}, InvalidExpiry),
        ({"expires_at": T0 - timedelta(seconds=1)}, InvalidExpiry),
        ({"confirmation_override": 0}, InvalidConfirmations),
    ],
)
def test_creation_refuses_inconsistent_invoices(
    overrides: dict[str, Any], error: type[CheckoutError]
) -> None:
    with pytest.raises(error):
        create_invoice(**overrides)


def test_creating_again_with_the_same_command_returns_the_same_events() -> None:
    command = create_invoice()
    invoice, first = handle_invoice(None, command)
    again, second = handle_invoice(invoice, command)
    assert second == first
    assert again == invoice


def test_partial_payments_add_up_and_the_invoice_is_paid_when_confirmed_money_covers_it() -> None:
    invoice = run_invoice(new_invoice(amount=AMOUNT), detected("p1", usdt("4")))
    assert invoice.status is CONFIRMING
    assert invoice.payment_exception is PaymentException.UNDERPAID
    assert (invoice.amount_received, invoice.amount_due) == (usdt("4"), usdt("6"))

    invoice = run_invoice(invoice, confirmed("p1", usdt("4")), detected("p2", usdt("6")))
    assert invoice.status is CONFIRMING
    assert invoice.payment_exception is None
    assert (invoice.amount_received, invoice.amount_confirmed, invoice.amount_due) == (
        AMOUNT,
        usdt("4"),
        0,
    )

    invoice, events = handle_invoice(invoice, confirmed("p2", usdt("6")))
    assert [event.event_type for event in events] == ["InvoicePaymentConfirmed", "InvoicePaid"]
    assert invoice.status is PAID
    assert invoice.paid_at == T0 + timedelta(minutes=2)
    paid = events[1]
    assert isinstance(paid, InvoicePaid)
    assert paid.data.amount_confirmed == AMOUNT
    assert paid.data.fee_percentage == Decimal("1")


def test_overpayment_is_flagged_and_settled_for_everything_confirmed() -> None:
    invoice = new_invoice(amount=AMOUNT)
    invoice, events = handle_invoice(invoice, confirmed("p1", usdt("12.5")))
    assert invoice.status is PAID
    assert invoice.payment_exception is PaymentException.OVERPAID
    assert invoice.amount_due == 0
    paid = events[-1]
    assert isinstance(paid, InvoicePaid)
    assert paid.data.amount_confirmed == usdt("12.5")


def test_a_payment_after_paid_is_recorded_as_overpaid_without_paying_again() -> None:
    invoice = invoice_in(PAID)
    assert invoice is not None
    invoice, events = handle_invoice(invoice, confirmed("p-extra", usdt("1")))
    assert [event.event_type for event in events] == ["InvoicePaymentConfirmed"]
    assert invoice.status is PAID
    assert invoice.payment_exception is PaymentException.OVERPAID
    assert invoice.amount_received == usdt("11")


def test_a_payment_after_expiry_is_recorded_and_flagged_paid_late_never_lost() -> None:
    invoice = invoice_in(EXPIRED)
    assert invoice is not None
    invoice = run_invoice(invoice, detected("p-late", AMOUNT))
    assert invoice.status is EXPIRED
    assert invoice.payment_exception is PaymentException.PAID_LATE
    assert invoice.payments["p-late"].late
    invoice = run_invoice(invoice, confirmed("p-late", AMOUNT))
    assert invoice.status is EXPIRED
    assert (invoice.amount_received, invoice.amount_confirmed, invoice.amount_due) == (
        AMOUNT,
        AMOUNT,
        0,
    )
    assert invoice.payment_exception is PaymentException.PAID_LATE


def test_a_payment_on_a_cancelled_invoice_is_recorded_and_flagged_paid_late() -> None:
    invoice = invoice_in(CANCELLED)
    assert invoice is not None
    invoice, events = handle_invoice(invoice, confirmed("p-late", usdt("3")))
    assert invoice.status is CANCELLED
    assert invoice.payment_exception is PaymentException.PAID_LATE
    assert invoice.amount_confirmed == usdt("3")
    assert [event.event_type for event in events] == ["InvoicePaymentConfirmed"]


def test_an_orphaned_payment_stops_counting_and_the_invoice_waits() -> None:
    invoice = run_invoice(new_invoice(amount=AMOUNT), detected("p1", AMOUNT))
    assert (invoice.status, invoice.amount_due) == (CONFIRMING, 0)
    invoice, events = handle_invoice(invoice, orphaned("p1"))
    assert [event.event_type for event in events] == ["InvoicePaymentReverted"]
    assert invoice.status is CONFIRMING
    assert (invoice.amount_received, invoice.amount_due) == (0, AMOUNT)
    assert invoice.payment_exception is None
    # The transfer is included again and confirmed: the invoice is paid.
    invoice = run_invoice(invoice, detected("p1", AMOUNT), confirmed("p1", AMOUNT))
    assert invoice.status is PAID


def test_a_failed_payment_stops_counting() -> None:
    invoice = run_invoice(
        new_invoice(amount=AMOUNT), detected("p1", usdt("4")), detected("p2", usdt("6"))
    )
    invoice = run_invoice(invoice, failed("p2"))
    assert (invoice.amount_received, invoice.amount_due) == (usdt("4"), usdt("6"))
    assert invoice.payment_exception is PaymentException.UNDERPAID
    assert "p2" not in invoice.payments


def test_a_confirmed_payment_cannot_fail() -> None:
    invoice = invoice_in(PAID)
    with pytest.raises(PaymentAlreadyConfirmed) as caught:
        handle_invoice(invoice, failed("p-full"))
    assert caught.value.code == "payment_already_confirmed"


def test_a_deep_reorg_reopens_a_paid_invoice_and_paid_again_it_settles_in_the_next_round() -> None:
    invoice = invoice_in(PAID)
    assert invoice is not None
    late_reorg = orphaned("p-full").model_copy(
        update={"orphaned_at": EXPIRES_AT + timedelta(hours=1)}
    )
    reopened, events = handle_invoice(invoice, late_reorg)
    [reverted] = events
    assert isinstance(reverted, InvoicePaymentReverted)
    assert (reverted.data.was_confirmed, reverted.data.reversed_round) == (True, 1)
    assert reverted.data.status == "confirming" and reverted.data.amount_confirmed == 0
    assert (reopened.status, reopened.paid_at, reopened.reopenings) == (CONFIRMING, None, 1)
    assert reopened.settlement_round == 2
    # Reopened after its deadline, it does not expire while the transfer may come back ...
    assert reopened.reopened_at == EXPIRES_AT + timedelta(hours=1)
    assert not reopened.expiry_due(reopened.reopened_at + timedelta(minutes=1))
    assert reopened.expiry_due(reopened.reopened_at + REINCLUSION_WINDOW)
    # ... and the transfer included again pays it again, in round 2.
    again, events = handle_invoice(
        run_invoice(reopened, detected("p-full", AMOUNT)), confirmed("p-full", AMOUNT)
    )
    paid = events[-1]
    assert isinstance(paid, InvoicePaid) and paid.data.settlement_round == 2
    assert again.status is PAID and again.payment_exception is None


def test_an_overpaid_invoice_that_still_has_enough_is_paid_again_at_once() -> None:
    # Both transfers counted before it was paid: round 1 settled 13 USDT.
    invoice = run_invoice(
        new_invoice(amount=AMOUNT),
        detected("p1", AMOUNT),
        confirmed("p2", usdt("3")),
        confirmed("p1", AMOUNT),
    )
    assert (invoice.status, invoice.settled_amount) == (PAID, usdt("13"))
    after, events = handle_invoice(invoice, orphaned("p2"))
    assert [event.event_type for event in events] == ["InvoicePaymentReverted", "InvoicePaid"]
    reverted, paid = events
    assert isinstance(reverted, InvoicePaymentReverted) and reverted.data.reversed_round == 1
    assert isinstance(paid, InvoicePaid)
    assert (paid.data.settlement_round, paid.data.settled_amount) == (2, AMOUNT)
    assert after.status is PAID and after.payment_exception is None


def test_a_payment_that_came_after_the_invoice_was_paid_is_never_settled_nor_reverses_it() -> None:
    invoice = run_invoice(
        new_invoice(amount=AMOUNT), confirmed("p1", AMOUNT), confirmed("p-extra", usdt("3"))
    )
    assert (invoice.status, invoice.unsettled_payments) == (PAID, ("p-extra",))
    assert (invoice.amount_confirmed, invoice.amount_settleable) == (usdt("13"), AMOUNT)
    # Orphaned, it takes nothing from the settlement: no round reversed, still paid.
    after, [reverted] = handle_invoice(invoice, orphaned("p-extra"))
    assert isinstance(reverted, InvoicePaymentReverted)
    assert (reverted.data.was_confirmed, reverted.data.reversed_round) == (True, None)
    assert (after.status, after.reopenings, after.unsettled_payments) == (PAID, 0, ())


def test_a_later_round_settles_only_what_the_reversed_round_did() -> None:
    # p-extra arrived after the invoice was paid: the customer's money (it may be refunded as
    # received money), never the merchant's, even when the settled payment comes back.
    invoice = run_invoice(
        new_invoice(amount=AMOUNT), confirmed("p1", AMOUNT), confirmed("p-extra", usdt("3"))
    )
    reopened = run_invoice(invoice, orphaned("p1"))
    assert (reopened.status, reopened.amount_confirmed, reopened.amount_settleable) == (
        CONFIRMING,
        usdt("3"),
        0,
    )
    again, events = handle_invoice(reopened, confirmed("p1", AMOUNT))
    paid = events[-1]
    assert isinstance(paid, InvoicePaid)
    assert (paid.data.settlement_round, paid.data.settled_amount) == (2, AMOUNT)
    assert paid.data.amount_confirmed == usdt("13")
    assert again.status is PAID


def test_an_accepted_underpayment_reopened_is_paid_again_on_what_was_accepted() -> None:
    underpaid = new_invoice(amount=AMOUNT).model_copy(update={"underpaid_tolerance": Decimal(1)})
    invoice = run_invoice(underpaid, confirmed("p1", usdt("9.95")), expire())
    assert (invoice.status, invoice.settled_amount) == (PAID, usdt("9.95"))
    reopened = run_invoice(invoice, orphaned("p1"))
    assert (reopened.status, reopened.amount_to_pay) == (CONFIRMING, usdt("9.95"))
    again, events = handle_invoice(reopened, confirmed("p1", usdt("9.95")))
    paid = events[-1]
    assert isinstance(paid, InvoicePaid)
    assert (paid.data.settlement_round, paid.data.settled_amount) == (2, usdt("9.95"))
    assert again.status is PAID


def test_a_reopened_invoice_that_expired_before_can_expire_again() -> None:
    underpaid = new_invoice(amount=AMOUNT).model_copy(update={"underpaid_tolerance": Decimal(1)})
    first = ExpireInvoice.at(INVOICE_ID, AFTER_EXPIRY)
    invoice = run_invoice(underpaid, confirmed("p1", usdt("9.95")), first)
    assert invoice.status is PAID  # accepted within the tolerance by the expiry
    reopened = run_invoice(invoice, orphaned("p1"))
    later = AFTER_EXPIRY + REINCLUSION_WINDOW
    assert reopened.expiry_due(later)
    again = ExpireInvoice.at(INVOICE_ID, later, reopened.extensions, reopened.reopenings)
    assert again.command_id != first.command_id
    expired, [event] = handle_invoice(reopened, again)
    assert event.event_type == "InvoiceExpired" and expired.status is EXPIRED


def test_a_confirmed_late_payment_orphaned_leaves_the_expired_invoice_as_it_is() -> None:
    invoice = run_invoice(new_invoice(amount=AMOUNT), expire(), confirmed("p-late", AMOUNT))
    after, [reverted] = handle_invoice(invoice, orphaned("p-late"))
    assert isinstance(reverted, InvoicePaymentReverted)
    assert (reverted.data.was_confirmed, reverted.data.reversed_round) == (True, None)
    assert after.status is EXPIRED and after.payments == {}


def test_seeing_a_payment_again_changes_nothing() -> None:
    invoice = run_invoice(new_invoice(amount=AMOUNT), confirmed("p1", usdt("4")))
    for command in (detected("p1", usdt("4")), confirmed("p1", usdt("4"))):
        after, events = handle_invoice(invoice, command)
        assert events == []
        assert after == invoice


def test_an_underpaid_confirming_invoice_expires_with_what_it_received() -> None:
    invoice = invoice_in(CONFIRMING)
    assert invoice is not None
    invoice = run_invoice(invoice, expire())
    assert invoice.status is EXPIRED
    assert invoice.payment_exception is PaymentException.UNDERPAID
    assert invoice.expired_at == AFTER_EXPIRY
    assert invoice.amount_received == usdt("4")


def test_a_fully_received_invoice_does_not_expire_while_it_waits_for_confirmations() -> None:
    invoice = run_invoice(new_invoice(amount=AMOUNT), detected("p1", AMOUNT))
    assert not invoice.expiry_due(AFTER_EXPIRY)
    with pytest.raises(InvalidTransition, match="full amount arrived in time"):
        handle_invoice(invoice, expire())


def test_expiry_before_expires_at_is_refused() -> None:
    invoice = new_invoice()
    with pytest.raises(InvoiceNotDue) as caught:
        handle_invoice(invoice, expire(at=EXPIRES_AT - timedelta(seconds=1)))
    assert caught.value.param == "expired_at"
    after, _ = handle_invoice(invoice, expire(at=EXPIRES_AT))
    assert after.status is EXPIRED


@pytest.mark.parametrize(
    ("status", "now", "due"),
    [
        (PENDING, EXPIRES_AT - timedelta(seconds=1), False),
        (PENDING, EXPIRES_AT, True),
        (CONFIRMING, AFTER_EXPIRY, True),
        (PAID, AFTER_EXPIRY, False),
        (EXPIRED, AFTER_EXPIRY, False),
        (CANCELLED, AFTER_EXPIRY, False),
    ],
)
def test_expiry_due_tells_the_timer_whether_to_expire(
    status: InvoiceStatus, now: Any, due: bool
) -> None:
    invoice = invoice_in(status)
    assert invoice is not None
    assert invoice.expiry_due(now) is due


def test_the_expiry_timer_command_has_one_id_per_invoice() -> None:
    first = ExpireInvoice.at(INVOICE_ID, AFTER_EXPIRY)
    second = ExpireInvoice.at(INVOICE_ID, AFTER_EXPIRY + timedelta(minutes=5))
    assert first.command_id == second.command_id == "expire:inv_1"
    invoice, events = handle_invoice(new_invoice(), first)
    again, repeated = handle_invoice(invoice, second)
    assert repeated == events
    assert again == invoice


def test_cancelling_records_when_and_why() -> None:
    invoice = run_invoice(new_invoice(), cancel())
    assert invoice.cancelled_at == T0 + timedelta(minutes=1)
    assert invoice.cancellation_reason == "customer left"


def test_a_command_for_another_invoice_is_refused() -> None:
    with pytest.raises(AggregateMismatch):
        new_invoice().decide(detected("p1", usdt("1"), invoice_id="inv_2"))


def test_replay_refuses_a_history_that_does_not_start_with_creation() -> None:
    invoice = run_invoice(new_invoice(), detected("p1", usdt("1")))
    with pytest.raises(EventOutOfOrder):
        Invoice.replay(invoice.history[1:])
    with pytest.raises(ValueError, match="at least"):
        Invoice.replay([])


def test_apply_ignores_an_event_already_applied_and_refuses_gaps_and_forks() -> None:
    invoice = run_invoice(new_invoice(), detected("p1", usdt("1")), detected("p2", usdt("1")))
    assert invoice.apply(invoice.history[1]) == invoice
    start = Invoice.replay(invoice.history[:1])
    with pytest.raises(EventOutOfOrder):
        start.apply(invoice.history[2])
    other = run_invoice(new_invoice(), detected("p9", usdt("1")))
    with pytest.raises(EventOutOfOrder):
        invoice.apply(other.history[1])


def test_apply_refuses_a_second_creation_and_events_of_other_aggregates() -> None:
    invoice = new_invoice()
    created = invoice.history[0]
    assert isinstance(created, InvoiceCreated)
    second = created.model_copy(update={"aggregate_version": 2})
    with pytest.raises(ValueError, match="already created"):
        invoice.apply(second)
    stranger = created.model_copy(update={"aggregate_id": "inv_2"})
    with pytest.raises(AggregateMismatch):
        invoice.apply(stranger)
    with pytest.raises(ValueError, match="starts with InvoiceCreated"):
        Invoice._born(run_invoice(invoice, cancel()).history[1])


def test_the_invoice_round_trips_through_its_table_form_exactly() -> None:
    invoice = run_invoice(
        new_invoice(amount=AMOUNT), detected("p1", usdt("4.5")), confirmed("p1", usdt("4.5"))
    )
    stored = invoice.to_dict()
    assert stored["amount"] == "10"
    assert stored["payments"]["p1"] == {"amount": "4.5", "confirmed": True, "late": False}
    assert Invoice.from_dict(stored) == invoice
    assert Invoice.from_dict(stored).to_dict() == stored


def test_create_invoice_defaults_the_fee_to_one_percent() -> None:
    command = CreateInvoice(
        command_id=fresh_id(),
        invoice_id="inv_9",
        merchant_id="mer_1",
        amount="25",
        deposit_address="TJRabPrwbZy45sbavfcjinPJC18kjpRTv8",
        created_at=T0,
        expires_at=EXPIRES_AT,
    )
    assert command.fee_percentage == Decimal("1")
    assert command.amount == usdt("25")


def test_shop_links_fill_in_their_placeholders_percent_encoded() -> None:
    template = "https://shop.example/o/{order_id}/done?i={invoice_id}&again={order_id}"
    link = shop_link(template, "inv_1", {"order_id": "A/7 & co?"})
    assert (
        link == "https://shop.example/o/A%2F7%20%26%20co%3F/done?i=inv_1&again=A%2F7%20%26%20co%3F"
    )
    assert shop_link(template, "inv_1", {"order_id": None}) == (
        "https://shop.example/o//done?i=inv_1&again="
    )
    assert shop_link(None, "inv_1", {}) is None
