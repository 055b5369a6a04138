"""A notice on ``crypto-checkout.notifications`` (app/runtime/codecs.py): written and read back
whole, every bound refused as ``MalformedMessage``, and which channel a message on the topic is
for — the webhook deliveries' (named or not) or a notice's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from app.domain.notifications import Channel, Notice, NoticeFacts, NoticeMessage
from app.domain.webhooks import Notification
from app.runtime.codecs import (
    MAX_NOTICE_FACT_LENGTH,
    MAX_NOTICE_FACTS,
    MalformedMessage,
    decode_notice,
    decode_notification,
    encode_notice,
    encode_notification,
    notification_channel,
)

pytestmark = pytest.mark.unit

ABOUT = NoticeFacts(
    notice=Notice.PAYMENT_EXCEPTION,
    subject_id="inv_1",
    source_id="6f1c0a52-0b7e-5d0c-9a57-1f0c8f5f2b41",
    merchant_id="mer_1",
    occurred_at=datetime(2024, 5, 6, 10, 0, 30, 123456, tzinfo=UTC),
    facts={
        "invoice_id": "inv_1",
        "amount": "9.99",
        "amount_received": "12",
        "exception": "overpaid",
    },
)
MESSAGE = NoticeMessage.to("usr_1", Channel.TELEGRAM, ABOUT)


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(encode_notice(MESSAGE))
    body.update(changes)
    return body


def _raw(**changes: Any) -> bytes:
    return orjson.dumps(_body(**changes))


@pytest.mark.parametrize("channel", list(Channel))
def test_a_notice_reads_back_as_it_was_written(channel: Channel) -> None:
    message = NoticeMessage.to("usr_1", channel, ABOUT)
    raw = encode_notice(message)
    assert decode_notice(raw) == message
    assert decode_notice(raw.decode()) == message  # as text too
    assert notification_channel(raw) == channel.value


def test_the_trace_context_travels_in_the_headers_not_the_body() -> None:
    traced = MESSAGE.traced("00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    assert "traceparent" not in orjson.loads(encode_notice(traced))
    assert decode_notice(encode_notice(traced)) == MESSAGE


def test_at_the_bounds_a_notice_is_taken() -> None:
    facts = {f"fact_{n}": "x" * MAX_NOTICE_FACT_LENGTH for n in range(MAX_NOTICE_FACTS)}
    decoded = decode_notice(_raw(facts=facts, user_id="u" * 200))
    assert decoded.about.facts == facts and decoded.user_id == "u" * 200
    assert decode_notice(_raw(facts={})).about.facts == {}


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"not json", "must be JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"a string"', "JSON object"),
        *[
            (_raw(**{name: value}), f"{name} must be a short string")
            for name in ("notice_id", "user_id", "merchant_id", "subject_id", "source_id")
            for value in ("", "x" * 201, "usr\x00_1", 42, None)
        ],
        (_raw(facts={f"f{n}": "1" for n in range(MAX_NOTICE_FACTS + 1)}), "at most 40"),
        (_raw(facts=["amount", "9.99"]), "at most 40"),
        (_raw(facts={"reason": "x" * (MAX_NOTICE_FACT_LENGTH + 1)}), "'reason' must be a short"),
        (_raw(facts={"reason": "a\x00b"}), "'reason' must be a short string"),
        (_raw(facts={"amount": 9.99}), "'amount' must be a short string"),
        (_raw(facts={"amount": None}), "'amount' must be a short string"),
        (_raw(notice="invoice_refunded"), "invoice_refunded"),
        (_raw(channel="fax"), "fax"),
        (_raw(channel="webhook"), "webhook"),
        (_raw(occurred_at="yesterday"), "malformed notice"),
        (_raw(occurred_at="2024-05-06T10:00:00"), "malformed notice"),  # no offset
        (orjson.dumps({k: v for k, v in _body().items() if k != "facts"}), "facts"),
        (orjson.dumps({k: v for k, v in _body().items() if k != "notice"}), "notice"),
        (orjson.dumps({k: v for k, v in _body().items() if k != "user_id"}), "user_id"),
    ],
)
def test_a_malformed_notice_is_refused_naming_what_is_wrong(raw: bytes, words: str) -> None:
    with pytest.raises(MalformedMessage) as refused:
        decode_notice(raw)
    assert words in str(refused.value)


def test_a_webhook_delivery_is_not_a_notice() -> None:
    delivery = Notification(
        delivery_id="whd_1",
        endpoint_id="we_1",
        merchant_id="mer_1",
        origin="local",
        event={"event_id": "e1", "event_type": "InvoicePaid", "aggregate_id": "inv_1"},
    )
    raw = encode_notification(delivery)
    assert orjson.loads(raw)["channel"] == "webhook"
    assert decode_notification(raw).delivery_id == "whd_1"  # still read by the webhook side
    with pytest.raises(MalformedMessage):
        decode_notice(raw)


@pytest.mark.parametrize(
    ("raw", "channel"),
    [
        (b'{"channel": "webhook", "delivery_id": "whd_1"}', "webhook"),
        (b'{"delivery_id": "whd_1"}', "webhook"),  # written before channels were named
        (encode_notice(MESSAGE), "telegram"),
        (b'{"channel": "fax"}', "fax"),  # a notice's decoder refuses it, by name
        (b'{"channel": 7}', None),
        (b'{"channel": null}', None),
        (b"[]", None),
        (b'"webhook"', None),
        (b"not json at all", None),
        (b"", None),
    ],
)
def test_the_channel_of_a_message_on_the_topic(raw: bytes, channel: str | None) -> None:
    assert notification_channel(raw) == channel
    assert notification_channel(raw.decode()) == channel
