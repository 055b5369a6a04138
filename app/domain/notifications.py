"""What a merchant's user wants to be told, and how (docs/notifications.md).

Each user of a merchant chooses, per channel — email, Telegram, SMS — which of the platform's
notices reach them. A user who never chose has ``DEFAULT_PREFERENCES``: by email, what needs a
person (a payment that was not what the invoice asked, money out that finished or failed, a
webhook endpoint disabled — the email backup of webhooks); by Telegram, every notice but the
daily summary, once a chat is linked; nothing by SMS, which is off until a number is given.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Final

from app.domain.errors import CheckoutError
from app.domain.events import (
    DomainEvent,
    InvoiceExpired,
    InvoicePaid,
    InvoicePaymentConfirmed,
    PayoutFailed,
    PayoutPaid,
    RefundConfirmed,
    RefundFailed,
    SettlementCompleted,
    WebhookEndpointDisabled,
)
from app.domain.money import format_usdt
from app.domain.statuses import PaymentException


class Channel(StrEnum):
    EMAIL = "email"
    TELEGRAM = "telegram"
    SMS = "sms"


class Notice(StrEnum):
    """The notices a user can choose, each from the domain events named beside it."""

    INVOICE_PAID = "invoice_paid"  # InvoicePaid
    PAYMENT_EXCEPTION = "payment_exception"  # an invoice underpaid, overpaid or paid late
    SETTLEMENT_COMPLETED = "settlement_completed"  # SettlementCompleted
    REFUND_FINISHED = "refund_finished"  # a refund confirmed on chain, or failed
    PAYOUT_FINISHED = "payout_finished"  # a payout confirmed on chain, or failed
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint_disabled"  # WebhookEndpointDisabled
    DAILY_SUMMARY = "daily_summary"  # yesterday's figures, once a day


class InvalidPreferences(CheckoutError):
    """Notification preferences that cannot be kept: the field is named."""

    code = "notification_preferences_invalid"


# E.164: a plus, a country code that does not start with 0, at most 15 digits in all.
_E164: Final = re.compile(r"^\+[1-9][0-9]{6,14}$")


class KeepNumber:
    """``changed(sms_number=KEEP_NUMBER)``: the number stays as it is."""


KEEP_NUMBER: Final = KeepNumber()


@dataclass(frozen=True)
class NotificationPreferences:
    channels: Mapping[Channel, frozenset[Notice]] = field(default_factory=dict)
    sms_number: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.channels) - set(Channel)
        if unknown:
            raise InvalidPreferences(f"no channel {sorted(unknown)[0]!r}", param="channels")
        if self.sms_number is not None and not _E164.match(self.sms_number):
            raise InvalidPreferences(
                "sms_number must be an international number like +4915112345678 (E.164)",
                param="sms_number",
            )
        if self.channels.get(Channel.SMS) and self.sms_number is None:
            raise InvalidPreferences(
                "give an sms_number to receive notices by SMS", param="sms_number"
            )
        # Every channel present, so a reader never needs a default.
        object.__setattr__(
            self,
            "channels",
            {channel: frozenset(self.channels.get(channel, ())) for channel in Channel},
        )

    def wants(self, channel: Channel, notice: Notice) -> bool:
        return notice in self.channels[channel]

    def changed(
        self,
        channels: Mapping[Channel, Iterable[Notice]],
        sms_number: str | KeepNumber | None = KEEP_NUMBER,
    ) -> NotificationPreferences:
        """These preferences with the channels named in ``channels`` replaced, and the SMS
        number replaced (None: removed) unless ``KEEP_NUMBER``."""
        merged = dict(self.channels) | {c: frozenset(n) for c, n in channels.items()}
        number = self.sms_number if isinstance(sms_number, KeepNumber) else sms_number
        return NotificationPreferences(merged, number)


DEFAULT_PREFERENCES: Final = NotificationPreferences(
    {
        Channel.EMAIL: frozenset(
            {
                Notice.PAYMENT_EXCEPTION,
                Notice.REFUND_FINISHED,
                Notice.PAYOUT_FINISHED,
                Notice.WEBHOOK_ENDPOINT_DISABLED,
            }
        ),
        Channel.TELEGRAM: frozenset(set(Notice) - {Notice.DAILY_SUMMARY}),
        Channel.SMS: frozenset(),
    }
)


def parse_notices(raw: Iterable[str], channel: str) -> frozenset[Notice]:
    """Notice names as the API takes them; an unknown one is refused by name."""
    notices = set()
    for name in raw:
        try:
            notices.add(Notice(name))
        except ValueError:
            raise InvalidPreferences(
                f"{channel}: no notice {name[:60]!r}; choose from {', '.join(Notice)}",
                param=channel,
            ) from None
    return frozenset(notices)


# --- what goes out: one notice to one user over one channel -------------------------------------

# Notice ids are uuid5 of (source, notice, user, channel) in this namespace, so the same event
# fanned out twice — a redelivered Kafka message — names the same notice, sent once, while the
# two notices of one event (an overpaid invoice: paid, and the exception) stay two.
NOTICE_NAMESPACE: Final = uuid.UUID("0f6a3b52-6c1e-4d9c-9a57-1f0c8f5f2b41")

# How long a channel's provider may stay unreachable before a notice is given up, as the delays
# between attempts (seconds): minutes for a chat message, which is stale after an hour; about a
# day for email, which is still worth reading; SMS, paid per message, fewer attempts.
RETRY_SCHEDULES: Final[Mapping[Channel, tuple[float, ...]]] = {
    Channel.EMAIL: (10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600),
    Channel.TELEGRAM: (5, 15, 30, 60, 300, 900, 1800),
    Channel.SMS: (30, 120, 600, 1800),
}


# The facts that are USDT amounts: shown as canonical decimal strings ("9.99").
AMOUNT_FACTS: Final = frozenset(
    {"amount", "amount_received", "net_amount", "paid_gross", "platform_fees", "settled_net"}
)


def notice_id(source_id: str, user_id: str, channel: Channel, notice: Notice) -> str:
    """The id of ``notice`` of ``source_id`` (an event, a summary) to a user by a channel."""
    return str(uuid.uuid5(NOTICE_NAMESPACE, f"{source_id}/{notice}/{user_id}/{channel}"))


def retry_delay(channel: Channel, attempts: int) -> float | None:
    """Seconds until the next attempt after ``attempts`` failed ones; None: give it up."""
    schedule = RETRY_SCHEDULES[channel]
    return schedule[attempts - 1] if 1 <= attempts <= len(schedule) else None


@dataclass(frozen=True)
class NoticeFacts:
    """What one notice says, before it is addressed to anyone: which notice, about what, and the
    figures and names the message shows (strings, as a message prints them)."""

    notice: Notice
    subject_id: str  # the invoice, refund, payout or endpoint; the Kafka key
    source_id: str  # the event (or the summary) it comes from
    merchant_id: str
    occurred_at: datetime
    facts: Mapping[str, str]


@dataclass(frozen=True)
class NoticeMessage:
    """One notice for one user over one channel, as ``crypto-checkout.notifications`` carries it.

    It names the user, not an address: the address (email, chat, number) is looked up when it is
    sent, so a public topic carries no personal data and an unlinked chat gets nothing queued
    before the unlinking.
    """

    notice_id: str
    channel: Channel
    user_id: str
    about: NoticeFacts
    traceparent: str | None = None

    @classmethod
    def to(cls, user_id: str, channel: Channel, about: NoticeFacts) -> NoticeMessage:
        return cls(
            notice_id(about.source_id, user_id, channel, about.notice), channel, user_id, about
        )

    @property
    def key(self) -> str:
        return self.about.subject_id

    def traced(self, traceparent: str | None) -> NoticeMessage:
        return replace(self, traceparent=traceparent)


@dataclass(frozen=True)
class Recipient:
    """A merchant's user as notices reach them: where, and what they chose."""

    user_id: str
    merchant_id: str
    email: str | None  # None until verified: nothing is sent to an address not shown to be theirs
    preferences: NotificationPreferences
    telegram_chat_id: int | None = None

    def channels_for(self, notice: Notice, *, sms_enabled: bool) -> list[Channel]:
        """The channels this user is told ``notice`` by, among those they can be reached on."""
        reachable = {
            Channel.EMAIL: self.email is not None,
            Channel.TELEGRAM: self.telegram_chat_id is not None,
            Channel.SMS: sms_enabled and self.preferences.sms_number is not None,
        }
        return [c for c in Channel if reachable[c] and self.preferences.wants(c, notice)]


# The event types ``notices_for`` makes notices of: the fan-out reads only these in full (most of
# the stream — detections, confirmations, projections' fodder — makes none).
NOTICE_EVENT_TYPES: Final = frozenset(
    t.__name__
    for t in (
        InvoicePaid,
        InvoiceExpired,
        InvoicePaymentConfirmed,
        SettlementCompleted,
        RefundConfirmed,
        RefundFailed,
        PayoutPaid,
        PayoutFailed,
        WebhookEndpointDisabled,
    )
)


def notices_for(event: DomainEvent) -> list[NoticeFacts]:
    """The notices a domain event makes (most make none)."""
    data = event.data

    def about(notice: Notice, subject_id: str, **facts: object) -> NoticeFacts:
        return NoticeFacts(
            notice=notice,
            subject_id=subject_id,
            source_id=str(event.event_id),
            merchant_id=event.merchant_id,
            occurred_at=event.occurred_at,
            # Amounts are micro-USDT ints in the events; a message shows them as "9.99".
            facts={
                k: format_usdt(v) if k in AMOUNT_FACTS and isinstance(v, int) else str(v)
                for k, v in facts.items()
                if v is not None
            },
        )

    if isinstance(event, InvoicePaid | InvoiceExpired | InvoicePaymentConfirmed):
        return _invoice_notices(event, about)
    if isinstance(event, SettlementCompleted):
        return [
            about(
                Notice.SETTLEMENT_COMPLETED,
                event.aggregate_id,
                settlement_id=event.aggregate_id,
                invoice_id=event.data.invoice_id,
                net_amount=event.data.net_amount,
                reference=event.data.reference,
            )
        ]
    if isinstance(event, RefundConfirmed | RefundFailed | PayoutPaid | PayoutFailed):
        is_refund = isinstance(event, RefundConfirmed | RefundFailed)
        failed = isinstance(event, RefundFailed | PayoutFailed)
        return [
            about(
                Notice.REFUND_FINISHED if is_refund else Notice.PAYOUT_FINISHED,
                event.aggregate_id,
                **{"refund_id" if is_refund else "payout_id": event.aggregate_id},
                invoice_id=getattr(data, "invoice_id", None),
                amount=getattr(data, "amount", None),
                address=getattr(data, "address", None),
                outcome="failed" if failed else "confirmed",
                tx_hash=getattr(data, "tx_hash", None),
                reason=getattr(data, "reason", None),
            )
        ]
    if isinstance(event, WebhookEndpointDisabled):
        return [
            about(
                Notice.WEBHOOK_ENDPOINT_DISABLED,
                event.aggregate_id,
                endpoint_id=event.aggregate_id,
                url=event.data.url,
                failing_since=event.data.failing_since.isoformat(),
                disabled_at=event.data.disabled_at.isoformat(),
            )
        ]
    return []


def _invoice_notices(
    event: InvoicePaid | InvoiceExpired | InvoicePaymentConfirmed,
    about: Callable[..., NoticeFacts],
) -> list[NoticeFacts]:
    """An invoice's notices: paid, and a payment exception when the money needs a decision —
    told once, when it happens:

    - overpaid by the payment that paid it: with ``InvoicePaid``;
    - underpaid: when it expired with money in it (``InvoiceExpired``); an underpayment accepted
      later (by the merchant or the tolerance) is theirs already, so its ``InvoicePaid`` is only
      "paid";
    - paid late (after expiry or cancellation), or paid again once paid: when that payment is
      confirmed (``InvoicePaymentConfirmed``), whatever the merchant decides later.
    """
    progress = event.data
    figures: dict[str, object] = {
        "invoice_id": event.aggregate_id,
        "amount": progress.amount,
        "amount_received": progress.amount_received,
        "status": progress.status,
    }

    def exception(kind: PaymentException) -> NoticeFacts:
        return about(Notice.PAYMENT_EXCEPTION, event.aggregate_id, **figures, exception=kind)

    if isinstance(event, InvoicePaid):
        found = [about(Notice.INVOICE_PAID, event.aggregate_id, **figures)]
        if progress.payment_exception is PaymentException.OVERPAID:
            found.append(exception(PaymentException.OVERPAID))
        return found
    if isinstance(event, InvoiceExpired):
        underpaid = progress.payment_exception is PaymentException.UNDERPAID
        return [exception(PaymentException.UNDERPAID)] if underpaid else []
    payment = event.data
    if payment.late:
        return [exception(PaymentException.PAID_LATE)]
    # Confirmed while the invoice was paid already: money beyond what it asked, not settled.
    if payment.amount_confirmed - payment.payment_amount >= payment.amount:
        return [exception(PaymentException.OVERPAID)]
    return []
