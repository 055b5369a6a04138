"""The words of every notice, per channel: an email (subject, text, HTML), a Telegram message
(``parse_mode=HTML``), an SMS, and the dashboard page the notice is about (docs/notifications.md).

Each notice has one headline (the email's subject, the Telegram message's first line, the SMS)
written here, and one body per format, the jinja2 macros in ``notice_templates/bodies.txt`` and
``bodies.html``; ``email.txt`` and ``email.html`` lay a body out with its link and the footer.
The Telegram message is the text body, escaped, between the headline and the link.

Every fact and the merchant's name are untrusted (a merchant chooses its name, its order ids, its
webhook URL): control characters are stripped and lengths capped before anything is rendered,
the HTML email is autoescaped, the Telegram text is escaped here.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from urllib.parse import quote

import jinja2

from app.domain.errors import InvalidAmount
from app.domain.money import format_usdt, parse_usdt
from app.domain.notifications import Notice, NoticeFacts
from app.domain.statuses import PaymentException

PLATFORM: Final = "crypto-checkout"
PREFERENCES_API: Final = "PATCH /api/v1/notification-preferences"

TELEGRAM_LIMIT: Final = 4096
SMS_SEGMENT: Final = 160  # one GSM-7 segment
SMS_LIMIT: Final = 320

_FACT_LIMIT: Final = 200  # a fact as a body shows it
_NAME_LIMIT: Final = 100  # the merchant's name
_HEADLINE_PART: Final = 60  # an id or URL inside a headline
_SUBJECT_LIMIT: Final = 150
# A link longer than this (an absurd id) is replaced by the dashboard's home in Telegram and SMS.
_LINK_LIMIT: Final = 1000

# C0 and C1 controls, line and paragraph separators, and the bidirectional overrides that can
# make a name read backwards.
_CONTROL: Final = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)

# The facts a notice cannot be told without; any other fact is optional and printed if present.
_REQUIRED: Final[Mapping[Notice, tuple[str, ...]]] = {
    Notice.INVOICE_PAID: ("invoice_id", "amount", "amount_received"),
    Notice.PAYMENT_EXCEPTION: ("invoice_id", "amount", "amount_received", "exception"),
    Notice.SETTLEMENT_COMPLETED: ("settlement_id", "invoice_id", "net_amount"),
    Notice.REFUND_FINISHED: ("refund_id", "invoice_id", "amount", "outcome"),
    Notice.PAYOUT_FINISHED: ("payout_id", "amount", "outcome"),
    Notice.WEBHOOK_ENDPOINT_DISABLED: ("endpoint_id", "url", "failing_since"),
    Notice.DAILY_SUMMARY: (
        "date",
        "invoices_created",
        "invoices_paid",
        "paid_gross",
        "platform_fees",
        "settled_net",
        "invoices_expired",
        "settlements",
    ),
}

# The label of the email's button and the Telegram message's link.
_ACTIONS: Final[Mapping[Notice, str]] = {
    Notice.INVOICE_PAID: "View the invoice",
    Notice.PAYMENT_EXCEPTION: "Open the invoice",
    Notice.SETTLEMENT_COMPLETED: "View the invoice",
    Notice.REFUND_FINISHED: "View the invoice",
    Notice.PAYOUT_FINISHED: "View your payouts",
    Notice.WEBHOOK_ENDPOINT_DISABLED: "Open the webhook endpoint",
    Notice.DAILY_SUMMARY: "Open the dashboard",
}

_OUTCOMES: Final = frozenset({"confirmed", "failed"})


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class MessageContext:
    merchant_name: str
    public_url: str  # e.g. "https://pay.example.com" (no trailing slash): where the dashboard is
    support_email: str | None = None


def link_for(message: NoticeFacts, context: MessageContext) -> str:
    """The dashboard page the notice is about."""
    notice = _notice(message)
    facts = _required(notice, message.facts)
    dashboard = _dashboard(context)
    if notice is Notice.PAYOUT_FINISHED:
        return f"{dashboard}/payouts"
    if notice is Notice.WEBHOOK_ENDPOINT_DISABLED:
        return f"{dashboard}/webhooks/{_path_part(facts['endpoint_id'])}"
    if notice is Notice.DAILY_SUMMARY:
        return dashboard
    # The invoice notices, and the settlement and refund of an invoice.
    return f"{dashboard}/invoices/{_path_part(facts['invoice_id'])}"


def email_for(message: NoticeFacts, context: MessageContext) -> EmailContent:
    """The email: the headline as its subject, the body as text and as inline-styled HTML, each
    with the link and the footer saying why it was sent."""
    view = _View.of(message, context)
    variables = {
        "headline": view.headline,
        "merchant_name": view.merchant_name,
        "link": view.link,
        "action": _ACTIONS[view.notice],
        "dashboard_url": _dashboard(context),
        "preferences_api": PREFERENCES_API,
        "support_email": _clean(context.support_email or "", _FACT_LIMIT) or None,
        "platform": PLATFORM,
    }
    return EmailContent(
        subject=view.headline,
        text=_TEMPLATES.get_template("email.txt").render(body=view.body("txt"), **variables),
        html=_TEMPLATES.get_template("email.html").render(body=view.body("html"), **variables),
    )


def telegram_text_for(message: NoticeFacts, context: MessageContext) -> str:
    """The message for ``sendMessage`` with ``parse_mode=HTML``: only b and a href, all else
    escaped; at most Telegram's 4096 characters, the body shortened if need be."""
    view = _View.of(message, context)
    link = view.link if len(view.link) <= _LINK_LIMIT else _dashboard(context)
    head = f"<b>{_telegram_escape(view.headline)}</b>\n\n"
    tail = f'\n\n<a href="{_telegram_escape(link)}">{_telegram_escape(_ACTIONS[view.notice])}</a>'
    body = _escaped_within(view.body("txt").strip(), TELEGRAM_LIMIT - len(head) - len(tail))
    return head + body + tail


def sms_text_for(message: NoticeFacts, context: MessageContext) -> str:
    """``crypto-checkout: <headline>. <link>`` in one 160-character segment when it fits (the
    headline shortened, the link kept whole), never more than 320 characters."""
    view = _View.of(message, context)
    link = view.link if len(view.link) <= SMS_SEGMENT // 2 else _dashboard(context)
    prefix, suffix = f"{PLATFORM}: ", f". {link}"
    room = SMS_SEGMENT - len(prefix) - len(suffix)
    if room < 20:  # a public URL too long to leave room for the headline: two segments
        room = SMS_LIMIT - len(prefix) - len(suffix)
    headline = view.headline.replace("…", "...")  # "…" is not in GSM-7: it would cost a segment
    text = prefix + _clip(headline, max(room, 0), ellipsis="...") + suffix
    return _clip(text, SMS_LIMIT, ellipsis="...")


# --- the notice, made safe to print -------------------------------------------------------------


@dataclass(frozen=True)
class _View:
    notice: Notice
    facts: Mapping[str, str]  # cleaned, with what the bodies derive (excess, readable times)
    merchant_name: str
    headline: str
    link: str

    @classmethod
    def of(cls, message: NoticeFacts, context: MessageContext) -> _View:
        notice = _notice(message)
        _required(notice, message.facts)
        facts = {name: _clean(value, _FACT_LIMIT) for name, value in message.facts.items()}
        if "outcome" in _REQUIRED[notice] and facts["outcome"] not in _OUTCOMES:
            raise ValueError(f"{notice}: no outcome {facts['outcome']!r}")
        facts |= _derived(message.facts)
        return cls(
            notice=notice,
            facts=facts,
            merchant_name=_clean(context.merchant_name, _NAME_LIMIT) or "your shop",
            headline=_clip(_HEADLINES[notice](_headline_facts(facts)), _SUBJECT_LIMIT),
            link=link_for(message, context),
        )

    def body(self, extension: str) -> str:
        """The notice's body macro in ``bodies.txt`` or ``bodies.html``, rendered (for HTML, as
        ``Markup``: escaped once, inside the macro)."""
        macro = getattr(_TEMPLATES.get_template(f"bodies.{extension}").module, self.notice)
        rendered: str = macro(self.facts, self.merchant_name)
        return rendered


def _notice(message: NoticeFacts) -> Notice:
    try:
        notice = Notice(message.notice)
    except ValueError:
        raise ValueError(f"no notice {str(message.notice)[:60]!r}") from None
    if notice not in _REQUIRED:
        raise ValueError(f"no words for notice {notice!r} yet")
    return notice


def _required(notice: Notice, facts: Mapping[str, str]) -> Mapping[str, str]:
    missing = [name for name in _REQUIRED[notice] if not facts.get(name)]
    if missing:
        raise ValueError(f"{notice} needs the facts {', '.join(missing)}")
    return facts


def _derived(raw: Mapping[str, str]) -> dict[str, str]:
    derived: dict[str, str] = {}
    excess = _excess(raw.get("amount_received", ""), raw.get("amount", ""))
    if excess is not None:
        derived["excess"] = excess
    for name in ("failing_since", "disabled_at"):
        if name in raw:
            derived[name] = _when(raw[name])
    return derived


def _excess(received: str, amount: str) -> str | None:
    """How much more than the invoice's amount was received, if both are amounts."""
    try:
        difference = parse_usdt(received, allow_zero=True) - parse_usdt(amount)
    except InvalidAmount:
        return None
    return format_usdt(difference) if difference > 0 else None


def _when(iso: str) -> str:
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return _clean(iso, _FACT_LIMIT)
    if moment.tzinfo is None:
        return _clean(iso, _FACT_LIMIT)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _headline_facts(facts: Mapping[str, str]) -> Mapping[str, str]:
    return {name: _clip(value, _HEADLINE_PART) for name, value in facts.items()}


def _clean(value: str, limit: int) -> str:
    """One line of printable text: controls become spaces, runs of space one, at most ``limit``."""
    return _clip(" ".join(_CONTROL.sub(" ", str(value)).split()), limit)


def _clip(text: str, limit: int, *, ellipsis: str = "…") -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - len(ellipsis), 0)].rstrip() + ellipsis


def _dashboard(context: MessageContext) -> str:
    return context.public_url.rstrip("/") + "/dashboard"


def _path_part(value: str) -> str:
    # "." and ".." would move up the path where a browser resolves them.
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if quoted in {".", ".."} else quoted


def _telegram_escape(text: str) -> str:
    # The entities Telegram's HTML knows: &amp; &lt; &gt; &quot;.
    return html.escape(text, quote=False).replace('"', "&quot;")


def _escaped_within(text: str, limit: int) -> str:
    """``text`` escaped, cut so that the escaped form stays within ``limit`` (never inside an
    entity)."""
    escaped = _telegram_escape(text)
    if len(escaped) <= limit:
        return escaped
    pieces, length = [], 1  # room for the ellipsis
    for char in text:
        piece = _telegram_escape(char)
        if length + len(piece) > limit:
            break
        pieces.append(piece)
        length += len(piece)
    return "".join(pieces).rstrip() + "…"


# --- the headlines: the email's subject, the first line in Telegram, the SMS --------------------


def _invoice_paid(f: Mapping[str, str]) -> str:
    return f"Invoice {f['invoice_id']} paid: {f['amount']} USDT"


def _payment_exception(f: Mapping[str, str]) -> str:
    invoice, amount, received = f["invoice_id"], f["amount"], f["amount_received"]
    exception = f["exception"]
    if exception == PaymentException.UNDERPAID:
        return f"Invoice {invoice} underpaid: {received} of {amount} USDT received"
    if exception == PaymentException.OVERPAID:
        return f"Invoice {invoice} overpaid: {received} USDT received for {amount} USDT"
    if exception == PaymentException.PAID_LATE:
        return f"Invoice {invoice} paid late: a payment arrived after it closed"
    return f"Invoice {invoice} needs a look: {exception}"


def _settlement_completed(f: Mapping[str, str]) -> str:
    return f"Invoice {f['invoice_id']} settled: {f['net_amount']} USDT credited to your balance"


def _refund_finished(f: Mapping[str, str]) -> str:
    done = "confirmed" if f["outcome"] == "confirmed" else "failed"
    return f"Refund of {f['amount']} USDT for invoice {f['invoice_id']} {done}"


def _payout_finished(f: Mapping[str, str]) -> str:
    done = "confirmed" if f["outcome"] == "confirmed" else "failed"
    return f"Payout of {f['amount']} USDT {done}"


def _webhook_endpoint_disabled(f: Mapping[str, str]) -> str:
    return f"Webhook endpoint disabled: {f['url']}"


def _daily_summary(f: Mapping[str, str]) -> str:
    paid = f["invoices_paid"]
    invoices = "invoice" if paid == "1" else "invoices"
    return f"Daily summary {f['date']}: {paid} {invoices} paid, {f['paid_gross']} USDT"


_HEADLINES: Final[Mapping[Notice, Callable[[Mapping[str, str]], str]]] = {
    Notice.INVOICE_PAID: _invoice_paid,
    Notice.PAYMENT_EXCEPTION: _payment_exception,
    Notice.SETTLEMENT_COMPLETED: _settlement_completed,
    Notice.REFUND_FINISHED: _refund_finished,
    Notice.PAYOUT_FINISHED: _payout_finished,
    Notice.WEBHOOK_ENDPOINT_DISABLED: _webhook_endpoint_disabled,
    Notice.DAILY_SUMMARY: _daily_summary,
}

_TEMPLATES: Final = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "notice_templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
