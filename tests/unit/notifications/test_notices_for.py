"""Which domain events make which notices (app/domain/notifications.py, ``notices_for``), with
which facts, and the rules around them: a notice's id, the retry schedules, and the channels a
user is reached on. The invoice and settlement events come from the domain's own handlers."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.domain.commands import ResolveInvoice
from app.domain.events import (
    DomainEvent,
    InvoicePaid,
    PayoutCreated,
    PayoutFailed,
    PayoutPaid,
    RefundConfirmed,
    RefundCreated,
    RefundFailed,
)
from app.domain.invoice import Invoice, handle_invoice
from app.domain.notifications import (
    DEFAULT_PREFERENCES,
    RETRY_SCHEDULES,
    Channel,
    Notice,
    NoticeFacts,
    NoticeMessage,
    NotificationPreferences,
    Recipient,
    notice_id,
    notices_for,
    retry_delay,
)
from app.domain.settlement import handle_settlement
from app.domain.webhooks import endpoint_disabled_event
from tests.unit.domain.factories import (
    AFTER_EXPIRY,
    CUSTOMER_ADDRESS,
    MERCHANT_ID,
    SETTLEMENT_ID,
    T0,
    complete,
    confirmed,
    create_invoice,
    create_settlement,
    detected,
    expire,
    fail,
    fresh_id,
    new_invoice,
    tx_hash,
    usdt,
)

pytestmark = pytest.mark.unit

AMOUNT = usdt("9.99")


def _run(invoice: Invoice, *commands: Any) -> tuple[Invoice, list[DomainEvent]]:
    """The invoice after ``commands`` and every event they made, in order."""
    events: list[DomainEvent] = []
    for command in commands:
        invoice, made = handle_invoice(invoice, command)
        events += made
    return invoice, events


def _paid_with(received: str) -> list[DomainEvent]:
    """The events of one payment of ``received`` USDT to a 9.99 invoice, detected and confirmed."""
    amount = usdt(received)
    invoice, created = handle_invoice(None, create_invoice())
    _, events = _run(invoice, detected("p1", amount), confirmed("p1", amount))
    return [*created, *events]


def _only(events: list[DomainEvent], event_type: type[DomainEvent]) -> DomainEvent:
    [event] = [e for e in events if isinstance(e, event_type)]
    return event


def _made(events: list[DomainEvent]) -> list[NoticeFacts]:
    return [facts for event in events for facts in notices_for(event)]


# --- invoices ------------------------------------------------------------------------------------


def test_a_paid_invoice_makes_invoice_paid_with_its_amounts_as_decimal_strings() -> None:
    events = _paid_with("9.99")
    paid = _only(events, InvoicePaid)

    [notice] = _made(events)  # the detection and confirmation alone make none
    assert notice == NoticeFacts(
        notice=Notice.INVOICE_PAID,
        subject_id="inv_1",
        source_id=str(paid.event_id),
        merchant_id=MERCHANT_ID,
        occurred_at=paid.occurred_at,
        facts={
            "invoice_id": "inv_1",
            "amount": "9.99",
            "amount_received": "9.99",
            "status": "paid",
        },
    )


def test_an_overpaid_invoice_also_makes_a_payment_exception() -> None:
    events = _paid_with("12.5")
    paid, exception = _made(events)

    assert (paid.notice, exception.notice) == (Notice.INVOICE_PAID, Notice.PAYMENT_EXCEPTION)
    assert exception.facts == {
        "invoice_id": "inv_1",
        "amount": "9.99",
        "amount_received": "12.5",
        "status": "paid",
        "exception": "overpaid",
    }
    # Both from the same event, about the same invoice.
    assert paid.source_id == exception.source_id == str(_only(events, InvoicePaid).event_id)
    assert paid.subject_id == exception.subject_id == "inv_1"


def _expired_then_paid_late() -> tuple[Invoice, list[DomainEvent], list[DomainEvent]]:
    """A 9.99 invoice that expired unpaid, then received 9.99: the expiry's events and the late
    payment's, apart."""
    invoice, expiry = _run(new_invoice(), expire())
    late_at = AFTER_EXPIRY + timedelta(minutes=5)
    invoice, late = _run(
        invoice,
        detected("p_late", AMOUNT, detected_at=late_at),
        confirmed("p_late", AMOUNT, confirmed_at=late_at),
    )
    return invoice, expiry, late


def test_a_late_payment_the_merchant_accepts_is_only_invoice_paid_then() -> None:
    # The merchant was told it was paid late when it arrived (the test below); accepting it is
    # their own decision, so its InvoicePaid is only "paid".
    invoice, _, _ = _expired_then_paid_late()
    accept = ResolveInvoice(
        command_id=fresh_id("resolve"),
        invoice_id="inv_1",
        action="accept",
        resolved_at=AFTER_EXPIRY + timedelta(hours=1),
    )
    _, events = _run(invoice, accept)

    [paid] = _made(events)
    assert paid.notice is Notice.INVOICE_PAID
    assert paid.facts["amount_received"] == "9.99"


def test_a_payment_after_expiry_tells_the_merchant_it_was_paid_late() -> None:
    _, expiry, late = _expired_then_paid_late()
    assert _made(expiry) == []  # nothing was paid before it expired
    exceptions = [n for n in _made(late) if n.notice is Notice.PAYMENT_EXCEPTION]
    assert [n.facts["exception"] for n in exceptions] == ["paid_late"]


def test_a_payment_to_a_paid_invoice_tells_the_merchant_it_was_overpaid() -> None:
    invoice, _ = _run(new_invoice(), detected("p1", AMOUNT), confirmed("p1", AMOUNT))
    _, extra = _run(invoice, detected("p2", usdt("1")), confirmed("p2", usdt("1")))
    exceptions = [n for n in _made(extra) if n.notice is Notice.PAYMENT_EXCEPTION]
    assert [n.facts["exception"] for n in exceptions] == ["overpaid"]


def test_an_invoice_that_expires_underpaid_makes_a_payment_exception() -> None:
    _, events = _run(
        new_invoice(),
        detected("p1", usdt("5")),
        confirmed("p1", usdt("5")),
        expire(),
    )
    [notice] = _made(events)
    assert notice.notice is Notice.PAYMENT_EXCEPTION
    assert notice.facts == {
        "invoice_id": "inv_1",
        "amount": "9.99",
        "amount_received": "5",
        "status": "expired",
        "exception": "underpaid",
    }


def test_an_invoice_that_expires_with_nothing_received_makes_no_notice() -> None:
    _, events = _run(new_invoice(), expire())
    assert [e.event_type for e in events] == ["InvoiceExpired"]
    assert _made(events) == []


# --- settlements, refunds, payouts, webhook endpoints --------------------------------------------


def test_a_completed_settlement_makes_settlement_completed_with_its_net_amount() -> None:
    settlement, _ = handle_settlement(None, create_settlement())
    _, [completed] = handle_settlement(settlement, complete())

    [notice] = notices_for(completed)
    assert notice.notice is Notice.SETTLEMENT_COMPLETED
    assert notice.subject_id == SETTLEMENT_ID
    assert notice.source_id == str(completed.event_id)
    assert notice.facts == {
        "settlement_id": SETTLEMENT_ID,
        "invoice_id": "inv_1",
        "net_amount": "9.89",  # 9.99 less the 1 % fee
        "reference": "payout-77",
    }


def test_a_failed_settlement_makes_no_notice() -> None:
    settlement, _ = handle_settlement(None, create_settlement())
    _, events = handle_settlement(settlement, fail())
    assert events and _made(list(events)) == []


def _recorded(event_type: type[DomainEvent], aggregate_id: str, data: dict[str, Any]) -> Any:
    return event_type.record(
        aggregate_id=aggregate_id,
        aggregate_version=3,
        merchant_id=MERCHANT_ID,
        causation_id=fresh_id("money-out"),
        occurred_at=T0,
        data=data,
    )


ON_CHAIN = {"tx_hash": tx_hash(7), "block_number": 1_234, "network_fee_sun": 0}
REFUND = {"invoice_id": "inv_1", "amount": usdt("2.01"), "address": CUSTOMER_ADDRESS}
PAYOUT = {"amount": usdt("120"), "address": CUSTOMER_ADDRESS}


@pytest.mark.parametrize(
    ("event", "notice", "facts"),
    [
        (
            _recorded(RefundConfirmed, "rf_1", REFUND | ON_CHAIN),
            Notice.REFUND_FINISHED,
            {"refund_id": "rf_1", "invoice_id": "inv_1", "amount": "2.01",
             "address": CUSTOMER_ADDRESS, "outcome": "confirmed", "tx_hash": tx_hash(7)},
        ),
        (
            _recorded(RefundFailed, "rf_1", REFUND | {"reason": "no energy"}),
            Notice.REFUND_FINISHED,
            {"refund_id": "rf_1", "invoice_id": "inv_1", "amount": "2.01",
             "address": CUSTOMER_ADDRESS, "outcome": "failed", "reason": "no energy"},
        ),
        (
            _recorded(PayoutPaid, "po_1", PAYOUT | ON_CHAIN),
            Notice.PAYOUT_FINISHED,
            {"payout_id": "po_1", "amount": "120", "address": CUSTOMER_ADDRESS,
             "outcome": "confirmed", "tx_hash": tx_hash(7)},
        ),
        (
            _recorded(PayoutFailed, "po_1", PAYOUT | {"reason": "refused by the signer"}),
            Notice.PAYOUT_FINISHED,
            {"payout_id": "po_1", "amount": "120", "address": CUSTOMER_ADDRESS,
             "outcome": "failed", "reason": "refused by the signer"},
        ),
    ],
    ids=["refund_confirmed", "refund_failed", "payout_paid", "payout_failed"],
)  # fmt: skip
def test_money_out_that_finished_makes_a_notice_with_its_outcome(
    event: DomainEvent, notice: Notice, facts: dict[str, str]
) -> None:
    [made] = notices_for(event)
    assert made.notice is notice
    assert made.subject_id == event.aggregate_id
    assert dict(made.facts) == facts  # nothing None, a payout names no invoice


def test_a_disabled_webhook_endpoint_makes_a_notice_naming_its_url_and_times() -> None:
    failing_since = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    event = endpoint_disabled_event(
        endpoint_id="we_1",
        endpoint_version=2,
        merchant_id=MERCHANT_ID,
        url="https://shop.example/hooks",
        failing_since=failing_since,
        disabled_at=T0,
    )
    [made] = notices_for(event)
    assert made.notice is Notice.WEBHOOK_ENDPOINT_DISABLED
    assert (made.subject_id, made.merchant_id) == ("we_1", MERCHANT_ID)
    assert made.facts == {
        "endpoint_id": "we_1",
        "url": "https://shop.example/hooks",
        "failing_since": "2024-05-01T09:30:00+00:00",
        "disabled_at": T0.isoformat(),
    }


def test_the_other_events_make_no_notice() -> None:
    quiet = [e for e in _paid_with("9.99") if not isinstance(e, InvoicePaid)]
    quiet += [
        _recorded(
            RefundCreated,
            "rf_1",
            REFUND | {"network_fee_payer": "platform", "network_fee_charged": 0},
        ),
        _recorded(PayoutCreated, "po_1", PAYOUT | {"approval": "automatic"}),
    ]
    _, created = handle_settlement(None, create_settlement())
    quiet += list(created)
    assert {e.event_type for e in quiet} >= {
        "InvoiceCreated",
        "InvoicePaymentDetected",
        "InvoicePaymentConfirmed",
        "RefundCreated",
        "PayoutCreated",
        "SettlementCreated",
    }
    assert {e.event_type: notices_for(e) for e in quiet} == {e.event_type: [] for e in quiet}


def test_every_fact_is_a_string() -> None:
    events = [*_paid_with("12.5"), _recorded(PayoutFailed, "po_1", PAYOUT | {"reason": "x"})]
    for made in _made(events):
        assert all(isinstance(v, str) for v in made.facts.values()), made


# --- notice ids ---------------------------------------------------------------------------------


def test_a_notice_id_is_stable_and_a_uuid() -> None:
    first = notice_id("evt_1", "usr_1", Channel.EMAIL, Notice.INVOICE_PAID)
    assert first == notice_id("evt_1", "usr_1", Channel.EMAIL, Notice.INVOICE_PAID)
    assert uuid.UUID(first).version == 5


def test_a_notice_id_differs_by_source_notice_user_and_channel() -> None:
    ids = {
        notice_id(source, user, channel, notice)
        for source in ("evt_1", "evt_2", "daily_summary/mer_1/2024-05-05")
        for user in ("usr_1", "usr_2")
        for channel in Channel
        for notice in (Notice.INVOICE_PAID, Notice.PAYMENT_EXCEPTION)
    }
    assert len(ids) == 3 * 2 * len(Channel) * 2


def test_the_two_notices_of_one_event_to_one_user_by_one_channel_have_their_own_ids() -> None:
    paid, exception = _made(_paid_with("12.5"))
    ids = {NoticeMessage.to("usr_1", Channel.TELEGRAM, f).notice_id for f in (paid, exception)}
    assert len(ids) == 2


def test_a_message_is_named_by_its_notice_id_and_keyed_by_its_subject() -> None:
    [facts] = _made(_paid_with("9.99"))
    message = NoticeMessage.to("usr_1", Channel.TELEGRAM, facts)
    assert message.notice_id == notice_id(
        facts.source_id, "usr_1", Channel.TELEGRAM, Notice.INVOICE_PAID
    )
    assert message.key == "inv_1"
    traced = message.traced("00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    assert traced.notice_id == message.notice_id and traced.traceparent is not None


# --- retries ------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", list(Channel))
def test_the_retry_delays_follow_the_schedule_then_end(channel: Channel) -> None:
    schedule = RETRY_SCHEDULES[channel]
    delays = [retry_delay(channel, attempts) for attempts in range(1, len(schedule) + 1)]
    assert delays == list(schedule)
    assert retry_delay(channel, len(schedule) + 1) is None
    assert retry_delay(channel, 100) is None
    assert retry_delay(channel, 0) is None
    assert list(schedule) == sorted(schedule)  # each wait at least as long as the one before


def test_a_chat_message_is_given_up_within_the_hour_and_an_email_after_about_a_day() -> None:
    assert sum(RETRY_SCHEDULES[Channel.TELEGRAM]) < 3600
    assert 12 * 3600 <= sum(RETRY_SCHEDULES[Channel.EMAIL]) <= 36 * 3600
    assert len(RETRY_SCHEDULES[Channel.SMS]) < len(RETRY_SCHEDULES[Channel.EMAIL])


# --- who is reached on which channel ------------------------------------------------------------

EVERYTHING = NotificationPreferences(
    {channel: frozenset(Notice) for channel in Channel}, "+4915112345678"
)
REACHABLE = Recipient(
    user_id="usr_1",
    merchant_id=MERCHANT_ID,
    email="owner@shop.example",
    preferences=EVERYTHING,
    telegram_chat_id=4242,
)


def test_a_user_reachable_everywhere_who_wants_everything_gets_every_channel() -> None:
    assert REACHABLE.channels_for(Notice.INVOICE_PAID, sms_enabled=True) == [
        Channel.EMAIL,
        Channel.TELEGRAM,
        Channel.SMS,
    ]


def test_an_unverified_email_gets_nothing() -> None:
    unverified = replace(REACHABLE, email=None)
    assert Channel.EMAIL not in unverified.channels_for(Notice.INVOICE_PAID, sms_enabled=True)


def test_no_linked_chat_gets_nothing_by_telegram() -> None:
    unlinked = replace(REACHABLE, telegram_chat_id=None)
    assert unlinked.channels_for(Notice.INVOICE_PAID, sms_enabled=True) == [
        Channel.EMAIL,
        Channel.SMS,
    ]


def test_sms_only_when_the_platform_sends_sms_and_the_user_gave_a_number_and_wants_it() -> None:
    assert Channel.SMS not in REACHABLE.channels_for(Notice.INVOICE_PAID, sms_enabled=False)
    no_sms = replace(REACHABLE, preferences=EVERYTHING.changed({Channel.SMS: []}))
    assert Channel.SMS not in no_sms.channels_for(Notice.INVOICE_PAID, sms_enabled=True)
    no_number = replace(
        REACHABLE, preferences=EVERYTHING.changed({Channel.SMS: []}, sms_number=None)
    )
    assert Channel.SMS not in no_number.channels_for(Notice.INVOICE_PAID, sms_enabled=True)


def test_only_the_channels_that_want_the_notice() -> None:
    defaults = replace(REACHABLE, preferences=DEFAULT_PREFERENCES)
    assert defaults.channels_for(Notice.INVOICE_PAID, sms_enabled=True) == [Channel.TELEGRAM]
    assert defaults.channels_for(Notice.PAYOUT_FINISHED, sms_enabled=True) == [
        Channel.EMAIL,
        Channel.TELEGRAM,
    ]
    assert defaults.channels_for(Notice.DAILY_SUMMARY, sms_enabled=True) == []
