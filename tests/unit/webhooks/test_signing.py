from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.adapters.webhooks.signing import (
    SIGNATURE_HEADER,
    MalformedSignatureHeader,
    SignatureError,
    SignatureMismatch,
    SignatureTimestampOutOfTolerance,
    compute_signature,
    parse_signature_header,
    signature_header,
    verify_signature,
    webhook_body,
)
from app.domain.events import EVENT_TYPES
from app.domain.webhooks import event_type_matches, validate_event_type_filters

pytestmark = pytest.mark.unit

SECRET = "whsec_unit_test_secret"
NOW = 1_740_830_403
BODY = b'{"id":"evt_1","type":"InvoicePaid"}'

secrets_text = st.text(min_size=1, max_size=60)
bodies = st.binary(max_size=500)
timestamps = st.integers(min_value=0, max_value=10**11)


def test_the_signature_is_hex_hmac_sha256_of_timestamp_dot_body_keyed_by_the_whole_secret() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()

    assert compute_signature(SECRET, NOW, BODY) == expected
    assert signature_header([SECRET], NOW, BODY) == f"t={NOW},v1={expected}"
    assert SIGNATURE_HEADER == "Checkout-Signature"


def test_during_rotation_there_is_one_v1_per_secret_current_first() -> None:
    header = signature_header(["whsec_new", "whsec_old"], NOW, BODY)

    assert header == (
        f"t={NOW},v1={compute_signature('whsec_new', NOW, BODY)},"
        f"v1={compute_signature('whsec_old', NOW, BODY)}"
    )
    verify_signature(header, BODY, "whsec_new", now=NOW)
    verify_signature(header, BODY, "whsec_old", now=NOW)
    with pytest.raises(SignatureMismatch):
        verify_signature(header, BODY, "whsec_other", now=NOW)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one signing secret"):
        signature_header([], NOW, BODY)


@given(secret=secrets_text, body=bodies, timestamp=timestamps)
def test_what_we_sign_verifies(secret: str, body: bytes, timestamp: int) -> None:
    verify_signature(signature_header([secret], timestamp, body), body, secret, now=timestamp)


@given(body=bodies, flip=st.integers(min_value=0, max_value=10_000))
def test_any_change_to_the_body_is_refused(body: bytes, flip: int) -> None:
    header = signature_header([SECRET], NOW, body)
    if body:
        index = flip % len(body)
        tampered = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
    else:
        tampered = b"x"

    with pytest.raises(SignatureMismatch, match="no v1 signature"):
        verify_signature(header, tampered, SECRET, now=NOW)


def test_the_timestamp_is_signed_so_a_replay_cannot_be_redated() -> None:
    header = signature_header([SECRET], NOW, BODY)
    redated = header.replace(f"t={NOW}", f"t={NOW + 3600}")

    with pytest.raises(SignatureMismatch):
        verify_signature(redated, BODY, SECRET, now=NOW + 3600)


@pytest.mark.parametrize(
    ("skew", "accepted"), [(0, True), (300, True), (-300, True), (301, False), (-301, False)]
)
def test_a_timestamp_beyond_the_tolerance_either_way_is_refused(skew: int, accepted: bool) -> None:
    header = signature_header([SECRET], NOW, BODY)

    if accepted:
        verify_signature(header, BODY, SECRET, now=NOW + skew)
    else:
        with pytest.raises(SignatureTimestampOutOfTolerance, match="more than 300 s"):
            verify_signature(header, BODY, SECRET, now=NOW + skew)


def test_the_tolerance_is_configurable() -> None:
    header = signature_header([SECRET], NOW, BODY)

    verify_signature(header, BODY, SECRET, now=NOW + 3000, tolerance=3600)
    with pytest.raises(SignatureTimestampOutOfTolerance):
        verify_signature(header, BODY, SECRET, now=NOW + 10, tolerance=5)


def test_unknown_schemes_and_spaces_are_ignored_and_any_v1_may_match() -> None:
    good = compute_signature(SECRET, NOW, BODY)
    header = f" t={NOW}, v0=deadbeef , v1={'0' * 64}, v1={good}, v2=whatever"

    verify_signature(header, BODY, SECRET, now=NOW)
    assert parse_signature_header(header) == (NOW, ["0" * 64, good])


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "not key=value"),
        ("garbage", "not key=value"),
        (f"v1={'a' * 64}", "no t="),
        (f"t={NOW}", "no v1 signature"),
        (f"t={NOW},v0={'a' * 64}", "no v1 signature"),
        (f"t=soon,v1={'a' * 64}", "exactly one t="),
        (f"t=-5,v1={'a' * 64}", "exactly one t="),
        (f"t=١٢٣,v1={'a' * 64}", "exactly one t="),
        (f"t={NOW},t={NOW},v1={'a' * 64}", "exactly one t="),
        (f"t={NOW},v1={'A' * 64}", "64 lowercase hex"),
        (f"t={NOW},v1=abc", "64 lowercase hex"),
        (f"t={NOW},v1={'é' * 64}", "64 lowercase hex"),
    ],
)
def test_a_malformed_header_is_refused_saying_why(header: str, message: str) -> None:
    with pytest.raises(MalformedSignatureHeader, match=message) as caught:
        verify_signature(header, BODY, SECRET, now=NOW)

    assert isinstance(caught.value, SignatureError)
    assert isinstance(caught.value, ValueError)


def test_a_wrong_secret_is_a_mismatch() -> None:
    header = signature_header([SECRET], NOW, BODY)

    with pytest.raises(SignatureMismatch, match="wrong secret"):
        verify_signature(header, BODY, SECRET + "x", now=NOW)


# --- body ---------------------------------------------------------------------------------------

ENVELOPE = {
    "event_id": "0b9c5a3e-58a4-5f7e-9d7c-1f0e2a4b6c8d",
    "event_type": "InvoicePaid",
    "schema_version": 1,
    "aggregate_type": "invoice",
    "aggregate_id": "inv_1",
    "aggregate_version": 4,
    "merchant_id": "mer_1",
    "causation_id": "cmd_1",
    "occurred_at": "2025-03-01T12:00:03.250000Z",
    "data": {"status": "paid", "amount": "9.99"},
}


def test_the_body_is_the_envelope_renamed_for_merchants_in_a_fixed_key_order() -> None:
    body = webhook_body(event=ENVELOPE, delivery_id="whd_1", attempt=3)

    assert body == (
        b'{"id":"0b9c5a3e-58a4-5f7e-9d7c-1f0e2a4b6c8d","type":"InvoicePaid",'
        b'"created":"2025-03-01T12:00:03.250000Z","schema_version":1,"aggregate_type":"invoice",'
        b'"aggregate_id":"inv_1","aggregate_version":4,"merchant_id":"mer_1",'
        b'"delivery_id":"whd_1","attempt":3,"data":{"status":"paid","amount":"9.99"}}'
    )
    assert "causation_id" not in orjson.loads(body)


def test_the_body_does_not_depend_on_the_envelope_key_order() -> None:
    shuffled = dict(reversed(ENVELOPE.items()))

    assert webhook_body(event=shuffled, delivery_id="whd_1", attempt=1) == webhook_body(
        event=ENVELOPE, delivery_id="whd_1", attempt=1
    )


@pytest.mark.parametrize("missing", ["event_id", "occurred_at", "data"])
def test_a_body_needs_a_whole_envelope(missing: str) -> None:
    event = {key: value for key, value in ENVELOPE.items() if key != missing}

    with pytest.raises(ValueError, match=f"missing {missing}"):
        webhook_body(event=event, delivery_id="whd_1", attempt=1)


# --- event type filters -------------------------------------------------------------------------

KNOWN = ["InvoiceCreated", "InvoicePaid", "PaymentDetected", "SettlementCreated"]


@pytest.mark.parametrize(
    ("filters", "event_type", "wanted"),
    [
        (["*"], "InvoicePaid", True),
        (["InvoicePaid"], "InvoicePaid", True),
        (["InvoicePaid"], "InvoicePaidLate", False),
        (["invoicepaid"], "InvoicePaid", False),
        (["Invoice*"], "InvoicePaid", True),
        (["Invoice*"], "PaymentDetected", False),
        (["Payment*", "InvoicePaid"], "InvoicePaid", True),
        ([], "InvoicePaid", False),
    ],
)
def test_event_type_filters(filters: list[str], event_type: str, wanted: bool) -> None:
    assert event_type_matches(filters, event_type) is wanted


def test_valid_filters_are_kept_in_order_without_duplicates() -> None:
    assert validate_event_type_filters(
        ["InvoicePaid", "Settlement*", "InvoicePaid", "*"], KNOWN
    ) == ["InvoicePaid", "Settlement*", "*"]


def test_every_real_event_type_is_a_valid_filter() -> None:
    assert validate_event_type_filters(list(EVENT_TYPES), EVENT_TYPES) == list(EVENT_TYPES)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ([], "must not be empty"),
        ([""], "'' is not an event type"),
        (["Inv*Paid"], "'Inv\\*Paid' is not an event type"),
        (["**"], "'\\*\\*' is not an event type"),
        (["InvoicePayed"], "'InvoicePayed' matches no event type"),
        (["InvoicePaid", "Refund*"], "'Refund\\*' matches no event type"),
    ],
)
def test_invalid_filters_are_refused_naming_the_filter(filters: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_event_type_filters(filters, KNOWN)
