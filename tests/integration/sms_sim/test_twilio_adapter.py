"""The real ``TwilioSms`` adapter against the SMS stand-in process: what reaches the phone, and
which error the caller sees for each way a send fails (retry later, or give up)."""

from __future__ import annotations

import pytest

from app.adapters.sms.off import NoSms
from app.adapters.sms.twilio import TwilioSms, sms_sender
from app.services.errors import DependencyUnavailable, NoticeRejected
from tests.integration.sms_sim.conftest import SmsSim
from tests.support.processes import free_port
from tests.support.sms_sim import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER

pytestmark = pytest.mark.integration

MERCHANT = "+4915112345678"


async def test_a_message_arrives_with_its_number_sender_and_text(
    sms_sim: SmsSim, sender: TwilioSms
) -> None:
    sid = await sender.send(MERCHANT, "Invoice INV-42 is paid: 9.99 USDT")

    [message] = sms_sim.control.wait_messages(MERCHANT)
    assert message["sid"] == sid
    assert sid.startswith("SM")
    assert len(sid) == 34
    assert (message["to"], message["from"], message["body"]) == (
        MERCHANT,
        FROM_NUMBER,
        "Invoice INV-42 is paid: 9.99 USDT",
    )
    assert message["status"] == "delivered"


async def test_one_session_carries_successive_messages_in_order(
    sms_sim: SmsSim, sender: TwilioSms
) -> None:
    sids = [await sender.send(MERCHANT, f"notice {n}") for n in range(3)]

    messages = sms_sim.control.wait_messages(MERCHANT, count=3)
    assert [(m["sid"], m["body"]) for m in messages] == list(
        zip(sids, ["notice 0", "notice 1", "notice 2"], strict=True)
    )


@pytest.mark.parametrize(
    ("body", "segments", "encoding"),
    [
        ("a" * 160, "1", "GSM-7"),
        ("a" * 161, "2", "GSM-7"),
        ("€" * 80, "1", "GSM-7"),  # an extension character takes two of the 160 places
        ("Платёж получен" * 5, "1", "UCS-2"),  # 70 characters
        ("Платёж получен" * 5 + "!", "2", "UCS-2"),
        ("Paid ✅ " * 30, "4", "UCS-2"),  # one emoji makes the whole text UCS-2: 210 → 67 a part
        ("a" * 1600, "11", "GSM-7"),
    ],
)
async def test_unicode_and_long_texts_are_counted_in_twilio_segments(
    sms_sim: SmsSim, sender: TwilioSms, body: str, segments: str, encoding: str
) -> None:
    sid = await sender.send(MERCHANT, body)

    [message] = sms_sim.control.wait_messages(MERCHANT)
    assert (message["sid"], message["body"]) == (sid, body)
    assert (message["num_segments"], message["encoding"]) == (segments, encoding)


async def test_a_number_twilio_calls_invalid_is_rejected_for_good(
    sms_sim: SmsSim, sender: TwilioSms
) -> None:
    # +15005550001 passes E.164, so only Twilio can refuse it (its test-credentials number).
    with pytest.raises(NoticeRejected, match=r"21211.*not a valid phone number"):
        await sender.send("+15005550001", "hello")

    assert sms_sim.control.status()["rejected"] == 1
    assert sms_sim.control.messages() == []


async def test_an_unsubscribed_recipient_is_rejected_for_good(
    sms_sim: SmsSim, sender: TwilioSms
) -> None:
    with pytest.raises(NoticeRejected, match="21610"):
        await sender.send("+15005550004", "hello")


async def test_a_sender_number_not_on_the_account_waits_for_the_operator(sms_sim: SmsSim) -> None:
    # Our SMS_FROM is wrong, not the message: retried once the operator fixes it.
    sender = sms_sim.sender(from_number="+15005550999")
    try:
        with pytest.raises(DependencyUnavailable, match=r"21606.*SMS_FROM"):
            await sender.send(MERCHANT, "hello")
    finally:
        await sender.close()


@pytest.mark.parametrize(
    ("account_sid", "auth_token"),
    [(ACCOUNT_SID, "not-the-token"), ("AC" + "f" * 32, AUTH_TOKEN)],
    ids=["wrong token", "wrong account"],
)
async def test_wrong_credentials_wait_for_the_operator_rather_than_drop_the_notice(
    sms_sim: SmsSim, account_sid: str, auth_token: str
) -> None:
    sender = sms_sim.sender(account_sid=account_sid, auth_token=auth_token)
    try:
        with pytest.raises(DependencyUnavailable, match=r"20003.*TWILIO_AUTH_TOKEN"):
            await sender.send(MERCHANT, "hello")
    finally:
        await sender.close()
    assert sms_sim.control.messages() == []


@pytest.mark.parametrize("status", [500, 429, 503])
async def test_a_failing_twilio_is_retryable_and_the_next_send_goes_through(
    sms_sim: SmsSim, sender: TwilioSms, status: int
) -> None:
    sms_sim.control.fault(status, times=1)

    with pytest.raises(DependencyUnavailable, match=f"HTTP {status}"):
        await sender.send(MERCHANT, "first try")
    sid = await sender.send(MERCHANT, "second try")

    [message] = sms_sim.control.wait_messages(MERCHANT)
    assert (message["sid"], message["body"]) == (sid, "second try")


async def test_a_slow_twilio_times_out_as_retryable(sms_sim: SmsSim) -> None:
    sms_sim.control.fault(None, times=1, delay=1.0)
    sender = sms_sim.sender(timeout=0.3)
    try:
        with pytest.raises(DependencyUnavailable, match="did not answer"):
            await sender.send(MERCHANT, "slow")
    finally:
        await sender.close()
    # Twilio may still take a message whose answer we gave up on: a retry can send it twice.
    [message] = sms_sim.control.wait_messages(MERCHANT, timeout=5)
    assert message["body"] == "slow"


async def test_nothing_listening_is_retryable() -> None:
    sender = TwilioSms(
        "AC" + "0" * 32, "token", FROM_NUMBER, base_url=f"http://127.0.0.1:{free_port()}"
    )
    try:
        with pytest.raises(DependencyUnavailable, match="did not answer"):
            await sender.send(MERCHANT, "hello")
    finally:
        await sender.close()


@pytest.mark.parametrize(
    ("to", "body", "error", "match"),
    [
        (MERCHANT, "a" * 1601, NoticeRejected, "1601 characters"),
        ("+49", "hello", NoticeRejected, "E.164"),
        ("4915112345678", "hello", NoticeRejected, "E.164"),
        (MERCHANT + "\n", "hello", NoticeRejected, "E.164"),
        (MERCHANT, "  ", ValueError, "empty"),
        (MERCHANT, "a\x00b", ValueError, "NUL"),
    ],
)
async def test_what_twilio_would_refuse_is_refused_before_any_request(
    sms_sim: SmsSim,
    sender: TwilioSms,
    to: str,
    body: str,
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        await sender.send(to, body)

    assert sms_sim.control.status()["requests"] == 0


async def test_with_sms_off_every_notice_is_rejected_for_good() -> None:
    sender = sms_sender("none")

    assert isinstance(sender, NoSms)
    with pytest.raises(NoticeRejected, match=r"SMS_PROVIDER=none"):
        await sender.send(MERCHANT, "hello")


def test_twilio_without_its_settings_names_the_missing_ones() -> None:
    with pytest.raises(ValueError, match="TWILIO_AUTH_TOKEN, SMS_FROM"):
        sms_sender("twilio", account_sid="AC" + "0" * 32)
    with pytest.raises(ValueError, match="TWILIO_ACCOUNT_SID"):
        sms_sender("twilio", account_sid="SK123", auth_token="t", from_number=FROM_NUMBER)
