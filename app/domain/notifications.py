"""What a merchant's user wants to be told, and how (docs/notifications.md).

Each user of a merchant chooses, per channel — email, Telegram, SMS — which of the platform's
notices reach them. A user who never chose has ``DEFAULT_PREFERENCES``: by email, what needs a
person (a payment that was not what the invoice asked, money out that finished or failed, a
webhook endpoint disabled — the email backup of webhooks); by Telegram, every notice but the
daily summary, once a chat is linked; nothing by SMS, which is off until a number is given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from app.domain.errors import CheckoutError


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
