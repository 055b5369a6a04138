"""The words of every notice (app/services/notice_messages.py): what each channel shows, the
dashboard page it links to, and that nothing a merchant chose — its name, an order id, a webhook
URL — can break out of the email, the Telegram HTML or the SMS."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest

from app.domain.events import (
    DomainEvent,
    InvoiceExpired,
    InvoicePaid,
    PayoutFailed,
    PayoutPaid,
    RefundConfirmed,
    RefundFailed,
    SettlementCompleted,
    WebhookEndpointDisabled,
)
from app.domain.notifications import Notice, NoticeFacts, notices_for
from app.services.notice_messages import (
    MessageContext,
    email_for,
    link_for,
    sms_text_for,
    telegram_text_for,
)

pytestmark = pytest.mark.unit

CONTEXT = MessageContext("Acme Shop", "https://pay.example.com", "support@pay.example.com")
NOW = datetime(2024, 5, 6, 10, 0, tzinfo=UTC)
ADDRESS = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
TX_HASH = "ab" * 32
USDT = 1_000_000

HOSTILE_NAME = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
HOSTILE_URL = 'https://hooks.example/"><img src=x onerror=alert(1)><script>x</script>'
EMAIL_TAGS = {"html", "head", "meta", "title", "body", "table", "tr", "td", "h1", "p", "a"}
EMAIL_TAGS |= {"strong", "span"}
TELEGRAM_TAGS = {"b", "i", "u", "s", "a", "code", "pre", "blockquote"}
VOID_TAGS = {"meta", "br", "hr", "img", "input", "link"}


def _recorded(
    event_type: type[DomainEvent], aggregate_id: str, data: dict[str, Any]
) -> NoticeFacts:
    event = event_type.record(
        aggregate_id=aggregate_id,
        aggregate_version=3,
        merchant_id="mer_1",
        causation_id="cmd_1",
        occurred_at=NOW,
        data=data,
    )
    return notices_for(event)[-1]


def _progress(status: str, exception: str | None, amount: int, received: int) -> dict[str, Any]:
    return {
        "status": status,
        "payment_exception": exception,
        "amount": amount,
        "amount_received": received,
        "amount_confirmed": received,
        "amount_due": max(amount - received, 0),
    }


def _facts(notice: Notice, subject_id: str, **facts: str) -> NoticeFacts:
    return NoticeFacts(notice, subject_id, "src_1", "mer_1", NOW, facts)


INVOICE = "https://pay.example.com/dashboard/invoices/inv_1"

# name: (the notice, its subject, the amount it must show, the page it links to)
CASES: dict[str, tuple[NoticeFacts, str, str, str]] = {
    "invoice_paid": (
        _recorded(
            InvoicePaid,
            "inv_1",
            _progress("paid", None, 9_990_000, 9_990_000) | {"fee_percentage": "1"},
        ),
        "Invoice inv_1 paid: 9.99 USDT",
        "9.99",
        INVOICE,
    ),
    "underpaid": (
        _recorded(InvoiceExpired, "inv_1", _progress("expired", "underpaid", 9_990_000, 5 * USDT)),
        "Invoice inv_1 underpaid: 5 of 9.99 USDT received",
        "5",
        INVOICE,
    ),
    "overpaid": (
        _recorded(
            InvoicePaid,
            "inv_1",
            _progress("paid", "overpaid", 9_990_000, 12 * USDT) | {"fee_percentage": "1"},
        ),
        "Invoice inv_1 overpaid: 12 USDT received for 9.99 USDT",
        "2.01",  # the difference to refund or keep
        INVOICE,
    ),
    "paid_late": (
        _facts(
            Notice.PAYMENT_EXCEPTION,
            "inv_1",
            invoice_id="inv_1",
            amount="9.99",
            amount_received="9.99",
            status="expired",
            exception="paid_late",
        ),
        "Invoice inv_1 paid late: a payment arrived after it closed",
        "9.99",
        INVOICE,
    ),
    "settlement_completed": (
        _recorded(
            SettlementCompleted,
            "set_1",
            {"invoice_id": "inv_1", "net_amount": 9_890_000, "reference": "batch 7"},
        ),
        "Invoice inv_1 settled: 9.89 USDT credited to your balance",
        "9.89",
        INVOICE,
    ),
    "refund_confirmed": (
        _recorded(
            RefundConfirmed,
            "rf_1",
            {
                "invoice_id": "inv_1",
                "amount": 2_010_000,
                "address": ADDRESS,
                "tx_hash": TX_HASH,
                "block_number": 100,
                "network_fee_sun": 0,
            },
        ),
        "Refund of 2.01 USDT for invoice inv_1 confirmed",
        "2.01",
        INVOICE,
    ),
    "refund_failed": (
        _recorded(
            RefundFailed,
            "rf_1",
            {"invoice_id": "inv_1", "amount": 2_010_000, "address": ADDRESS, "reason": "no energy"},
        ),
        "Refund of 2.01 USDT for invoice inv_1 failed",
        "2.01",
        INVOICE,
    ),
    "payout_paid": (
        _recorded(
            PayoutPaid,
            "po_1",
            {
                "amount": 120 * USDT,
                "address": ADDRESS,
                "tx_hash": TX_HASH,
                "block_number": 100,
                "network_fee_sun": 0,
            },
        ),
        "Payout of 120 USDT confirmed",
        "120",
        "https://pay.example.com/dashboard/payouts",
    ),
    "payout_failed": (
        _recorded(
            PayoutFailed,
            "po_1",
            {"amount": 120 * USDT, "address": ADDRESS, "reason": "refused by the signer"},
        ),
        "Payout of 120 USDT failed",
        "120",
        "https://pay.example.com/dashboard/payouts",
    ),
    "webhook_endpoint_disabled": (
        _recorded(
            WebhookEndpointDisabled,
            "we_1",
            {
                "url": "https://shop.example/hooks",
                "reason": "failing",
                "failing_since": datetime(2024, 5, 1, 9, 30, tzinfo=UTC),
                "disabled_at": NOW,
            },
        ),
        "Webhook endpoint disabled: https://shop.example/hooks",
        "2024-05-01 09:30 UTC",  # failing since
        "https://pay.example.com/dashboard/webhooks/we_1",
    ),
    "daily_summary": (
        _facts(
            Notice.DAILY_SUMMARY,
            "mer_1:2024-05-05",
            date="2024-05-05",
            invoices_created="12",
            invoices_paid="9",
            paid_gross="120.5",
            platform_fees="1.21",
            settled_net="119.29",
            invoices_expired="1",
            settlements="2",
        ),
        "Daily summary 2024-05-05: 9 invoices paid, 120.5 USDT",
        "119.29",
        "https://pay.example.com/dashboard",
    ),
}


def _case(name: str) -> NoticeFacts:
    return CASES[name][0]


def _with_facts(message: NoticeFacts, **facts: str) -> NoticeFacts:
    return replace(message, facts={**message.facts, **facts})


class _Tags(HTMLParser):
    """The tags of a document, its text, and whether every tag opened was closed in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.opened: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self.open: list[str] = []
        self.mismatched: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.opened.append((tag, attrs))
        if tag not in VOID_TAGS:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.mismatched.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parsed(document: str) -> _Tags:
    parser = _Tags()
    parser.feed(document)
    parser.close()
    return parser


def _no_space(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_every_notice_has_a_case() -> None:
    assert {case[0].notice for case in CASES.values()} == set(Notice)


@pytest.mark.parametrize("name", CASES)
def test_every_notice_renders_in_every_channel(name: str) -> None:
    message = _case(name)
    email = email_for(message, CONTEXT)
    assert email.subject and email.text and email.html
    assert telegram_text_for(message, CONTEXT)
    assert sms_text_for(message, CONTEXT).startswith("crypto-checkout: ")


@pytest.mark.parametrize("name", CASES)
def test_the_subject_and_text_show_the_amount_and_the_link(name: str) -> None:
    message, subject, amount, link = CASES[name]
    email = email_for(message, CONTEXT)

    assert link_for(message, CONTEXT) == link
    assert email.subject == subject
    assert f"{amount} USDT" in email.text or amount in email.text
    assert _no_space(amount) in _no_space("".join(_parsed(email.html).text))
    assert link in email.text
    assert f'href="{link}"' in email.html
    assert f'<a href="{link}">' in telegram_text_for(message, CONTEXT)
    assert sms_text_for(message, CONTEXT).endswith(link)


@pytest.mark.parametrize("name", CASES)
def test_every_email_ends_with_why_it_was_sent(name: str) -> None:
    email = email_for(_case(name), CONTEXT)
    footer = email.text.split("\n-- \n")[1]
    assert "notification preferences for Acme Shop" in footer
    assert "https://pay.example.com/dashboard" in footer
    assert "PATCH /api/v1/notification-preferences" in footer
    assert "support@pay.example.com" in footer
    assert "PATCH /api/v1/notification-preferences" in email.html
    assert 'href="mailto:support@pay.example.com"' in email.html


def test_without_a_support_address_the_footer_names_none() -> None:
    email = email_for(_case("invoice_paid"), replace(CONTEXT, support_email=None))
    assert "Questions" not in email.text
    assert "mailto:" not in email.html


@pytest.mark.parametrize("name", CASES)
def test_the_html_email_says_what_the_text_email_says(name: str) -> None:
    email = email_for(_case(name), CONTEXT)
    html_text = _no_space("".join(_parsed(email.html).text))
    body = email.text.split("\n-- \n")[0].strip().splitlines()[:-1]  # the link's line is a button
    for line in filter(None, body):
        assert _no_space(line) in html_text


@pytest.mark.parametrize("name", CASES)
def test_the_html_email_is_well_formed_and_self_contained(name: str) -> None:
    message = _case(name)
    for context in (CONTEXT, replace(CONTEXT, merchant_name=HOSTILE_NAME)):
        parsed = _parsed(email_for(message, context).html)
        assert parsed.open == [] and parsed.mismatched == []
        assert {tag for tag, _ in parsed.opened} <= EMAIL_TAGS
        for _, attrs in parsed.opened:
            names = {attribute for attribute, _ in attrs}
            assert not names & {"src", "onerror", "onload", "class"}
            href = dict(attrs).get("href")
            assert href is None or href.startswith(("https://pay.example.com/", "mailto:"))


@pytest.mark.parametrize("name", ["webhook_endpoint_disabled", "refund_failed", "invoice_paid"])
def test_the_html_email_escapes_a_hostile_name_and_facts(name: str) -> None:
    message = _with_facts(_case(name), url=HOSTILE_URL, reason=HOSTILE_NAME, order_id=HOSTILE_NAME)
    html = email_for(message, replace(CONTEXT, merchant_name=HOSTILE_NAME)).html
    parsed = _parsed(html)

    assert not {tag for tag, _ in parsed.opened} & {"script", "img"}
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    text = "".join(parsed.text)
    assert "<script>alert(1)</script>" in text  # shown as written, not run
    if name == "webhook_endpoint_disabled":
        assert '/"><img src=x' in text


def test_a_link_quotes_its_path_part() -> None:
    message = _with_facts(_case("invoice_paid"), invoice_id='inv/../x?y="<b>')
    assert link_for(message, CONTEXT) == (
        "https://pay.example.com/dashboard/invoices/inv%2F..%2Fx%3Fy%3D%22%3Cb%3E"
    )
    assert link_for(_with_facts(message, invoice_id=".."), CONTEXT).endswith("/invoices/%2E%2E")


def test_a_trailing_slash_on_the_public_url_makes_no_double_slash() -> None:
    context = replace(CONTEXT, public_url="https://pay.example.com/")
    assert link_for(_case("daily_summary"), context) == "https://pay.example.com/dashboard"


@pytest.mark.parametrize("name", CASES)
def test_the_subject_is_one_capped_line_whatever_the_facts(name: str) -> None:
    injected = "inv_1\r\nBcc: victim@example.com\n" + "x" * 10_000
    message = _with_facts(
        _case(name), **{fact: injected for fact in _case(name).facts if fact != "outcome"}
    )
    subject = email_for(message, replace(CONTEXT, merchant_name=injected)).subject

    assert "\n" not in subject and "\r" not in subject
    assert len(subject) <= 150
    assert not re.search(r"[\x00-\x1f\x7f]", subject)


def test_text_and_sms_carry_no_control_characters() -> None:
    sneaky = "inv_1\x1b[31m\u202eevil\x00\tx"
    message = _with_facts(_case("refund_failed"), reason=sneaky, invoice_id=sneaky)
    outputs = [
        email_for(message, CONTEXT).text,
        sms_text_for(message, CONTEXT),
        telegram_text_for(message, CONTEXT),
    ]
    for output in outputs:
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", output)
        assert "inv_1 [31m evil x" in output


@pytest.mark.parametrize("name", CASES)
def test_telegram_uses_only_its_tags_and_escapes_the_rest(name: str) -> None:
    facts = _case(name).facts
    message = _with_facts(_case(name), **{fact: HOSTILE_URL for fact in facts if fact != "outcome"})
    text = telegram_text_for(message, replace(CONTEXT, merchant_name=HOSTILE_NAME))
    parsed = _parsed(text)

    assert {tag for tag, _ in parsed.opened} <= TELEGRAM_TAGS
    assert parsed.open == [] and parsed.mismatched == []
    for tag, attrs in parsed.opened:
        assert [attribute for attribute, _ in attrs] == (["href"] if tag == "a" else [])
    # Outside the tags, only the entities Telegram knows.
    assert not re.search(r"&(?!(amp|lt|gt|quot);)", text)
    assert "&lt;script&gt;" in text and "<script" not in text
    assert len(text) <= 4096


def test_telegram_stays_within_4096_characters_when_every_fact_escapes_long() -> None:
    quotes = '"' * 10_000
    message = _with_facts(
        _case("refund_failed"),
        **{fact: quotes for fact in _case("refund_failed").facts if fact != "outcome"},
    )
    text = telegram_text_for(message, replace(CONTEXT, merchant_name=quotes))

    assert len(text) <= 4096
    assert text.startswith("<b>") and text.endswith("</a>")
    assert not re.search(r"&(?!(amp|lt|gt|quot);)", text)  # no entity cut in half
    assert _parsed(text).open == []


@pytest.mark.parametrize("name", CASES)
def test_an_sms_is_one_segment(name: str) -> None:
    sms = sms_text_for(_case(name), CONTEXT)
    assert len(sms) <= 160
    assert sms.isascii()


@pytest.mark.parametrize("name", CASES)
def test_an_sms_stays_within_320_characters_whatever_the_facts(name: str) -> None:
    long = "9" * 10_000
    message = _with_facts(
        _case(name), **{fact: long for fact in _case(name).facts if fact != "outcome"}
    )
    sms = sms_text_for(message, replace(CONTEXT, merchant_name=long))

    assert len(sms) <= 320
    assert "https://pay.example.com/dashboard" in sms  # the page itself, or the dashboard
    assert "\n" not in sms


def test_a_missing_optional_fact_does_not_print() -> None:
    refund = _case("refund_failed")
    without = replace(refund, facts={k: v for k, v in refund.facts.items() if k != "reason"})
    email = email_for(without, CONTEXT)

    assert "Transaction" not in email.text and "Transaction" not in email.html
    assert "failed." in email.text and "None" not in email.text
    settlement = _case("settlement_completed")
    bare = replace(
        settlement, facts={k: v for k, v in settlement.facts.items() if k != "reference"}
    )
    assert "Reference" not in email_for(bare, CONTEXT).text
    assert "Reference: batch 7" in email_for(settlement, CONTEXT).text


def test_a_confirmed_refund_names_its_transaction() -> None:
    email = email_for(_case("refund_confirmed"), CONTEXT)
    assert f"Transaction: {TX_HASH}" in email.text
    assert "confirmed on chain" in email.text


def test_an_underpaid_invoice_asks_for_a_decision() -> None:
    text = email_for(_case("underpaid"), CONTEXT).text
    assert "expired with 5 of its 9.99 USDT received" in text
    assert all(word in text for word in ("accept", "refund", "extend"))


def test_the_webhook_notice_says_what_to_do() -> None:
    text = email_for(_case("webhook_endpoint_disabled"), CONTEXT).text
    assert "failed since 2024-05-01 09:30 UTC" in text
    assert "enable the endpoint again" in text and "backup" in text


def test_an_unknown_notice_is_refused() -> None:
    message = replace(_case("invoice_paid"), notice="invoice_lost")  # type: ignore[arg-type]
    for render in (email_for, telegram_text_for, sms_text_for, link_for):
        with pytest.raises(ValueError, match="no notice 'invoice_lost'"):
            render(message, CONTEXT)


def test_a_missing_fact_a_notice_needs_is_refused_by_name() -> None:
    payout = _case("payout_paid")
    message = replace(payout, facts={k: v for k, v in payout.facts.items() if k != "amount"})
    with pytest.raises(ValueError, match="payout_finished needs the facts amount"):
        email_for(message, CONTEXT)


def test_an_outcome_that_is_neither_confirmed_nor_failed_is_refused() -> None:
    with pytest.raises(ValueError, match="no outcome 'lost'"):
        sms_text_for(_with_facts(_case("payout_paid"), outcome="lost"), CONTEXT)
