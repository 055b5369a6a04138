"""Notification preferences (app/domain/notifications.py): every channel present, the SMS
number's rules, and a change that replaces only what it names."""

from __future__ import annotations

import pytest

from app.domain.notifications import (
    DEFAULT_PREFERENCES,
    Channel,
    InvalidPreferences,
    Notice,
    NotificationPreferences,
    parse_notices,
)

pytestmark = pytest.mark.unit


def test_every_channel_is_there_even_when_not_given() -> None:
    preferences = NotificationPreferences({Channel.EMAIL: frozenset({Notice.INVOICE_PAID})})
    assert set(preferences.channels) == set(Channel)
    assert preferences.wants(Channel.EMAIL, Notice.INVOICE_PAID)
    assert not preferences.wants(Channel.TELEGRAM, Notice.INVOICE_PAID)


def test_the_defaults_email_what_needs_a_person_and_send_no_sms() -> None:
    assert DEFAULT_PREFERENCES.wants(Channel.EMAIL, Notice.WEBHOOK_ENDPOINT_DISABLED)
    assert not DEFAULT_PREFERENCES.wants(Channel.EMAIL, Notice.INVOICE_PAID)
    assert DEFAULT_PREFERENCES.wants(Channel.TELEGRAM, Notice.INVOICE_PAID)
    assert not DEFAULT_PREFERENCES.channels[Channel.SMS]


@pytest.mark.parametrize(
    "number", ["+4915112345678", "+12025550123", "+1234567", "+123456789012345"]
)
def test_an_international_number_is_taken(number: str) -> None:
    preferences = NotificationPreferences(
        {Channel.SMS: frozenset({Notice.PAYOUT_FINISHED})}, number
    )
    assert preferences.sms_number == number


@pytest.mark.parametrize(
    "number", ["015112345678", "+0151123456", "+123456", "+1234567890123456", "+49 151 123", ""]
)
def test_a_number_that_is_not_e164_is_refused(number: str) -> None:
    with pytest.raises(InvalidPreferences, match=r"E\.164") as refused:
        NotificationPreferences({}, number)
    assert refused.value.param == "sms_number"


def test_sms_notices_need_a_number() -> None:
    with pytest.raises(InvalidPreferences, match="give an sms_number"):
        NotificationPreferences({Channel.SMS: frozenset({Notice.INVOICE_PAID})})


def test_a_change_replaces_the_channels_named_and_keeps_the_number_unless_given() -> None:
    chosen = {
        Channel.EMAIL: frozenset({Notice.INVOICE_PAID}),
        Channel.SMS: frozenset({Notice.PAYOUT_FINISHED}),
    }
    before = NotificationPreferences(chosen, "+4915112345678")
    after = before.changed({Channel.EMAIL: [Notice.DAILY_SUMMARY]})
    assert after.channels[Channel.EMAIL] == {Notice.DAILY_SUMMARY}
    assert after.channels[Channel.SMS] == {Notice.PAYOUT_FINISHED}
    assert after.sms_number == "+4915112345678"
    with pytest.raises(InvalidPreferences):
        before.changed({}, None)  # SMS notices left without a number
    assert before.changed({Channel.SMS: []}, None).sms_number is None


def test_unknown_notice_names_are_refused_by_name() -> None:
    assert parse_notices(["invoice_paid"], "email") == {Notice.INVOICE_PAID}
    with pytest.raises(InvalidPreferences, match="email: no notice 'paid'") as refused:
        parse_notices(["invoice_paid", "paid"], "email")
    assert refused.value.param == "email"
