"""The signer's wire: requests as the workers send them, refused when malformed; its limits
setting."""

from __future__ import annotations

import orjson
import pytest

from app.adapters.signer.kafka import MalformedRequest, parse_request, request_body
from app.domain.signing import Purpose, Wanted
from app.services.signer import SigningRequest
from app.settings import Settings, SettingsError, parse_signer_limits

pytestmark = pytest.mark.unit

REQUEST = SigningRequest(
    "payout-1",
    "hot_wallet",
    Wanted(Purpose.PAYOUT, "trc20", "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf", 5, "TR7Nq"),
    "0a02",
)


def test_a_request_round_trips() -> None:
    assert parse_request(orjson.dumps(request_body(REQUEST))) == REQUEST


@pytest.mark.parametrize(
    "change",
    [
        {"purpose": "steal"},
        {"kind": "erc20"},
        {"amount": 1.5},
        {"amount": True},
        {"request_id": ""},
        {"raw_data_hex": 7},
        {"token_contract": 3},
    ],
)
def test_a_malformed_request_is_refused(change: dict[str, object]) -> None:
    with pytest.raises(MalformedRequest):
        parse_request(orjson.dumps({**request_body(REQUEST), **change}))


def test_not_json_missing_fields_and_oversized_requests_are_refused() -> None:
    for raw in (b"not json", b"[]", orjson.dumps({"request_id": "x"}), b"{" + b" " * 20000 + b"}"):
        with pytest.raises(MalformedRequest):
            parse_request(raw)


def test_signer_limits_are_read_in_whole_units() -> None:
    assert parse_signer_limits("payout=10:20,sweep_topup=30:3000") == {
        "payout": (10_000_000, 20_000_000),
        "sweep_topup": (30_000_000, 3_000_000_000),
    }
    with pytest.raises(SettingsError, match=r"^SIGNER_LIMITS: "):
        Settings.from_env({"SIGNER_LIMITS": "payout=lots"})
