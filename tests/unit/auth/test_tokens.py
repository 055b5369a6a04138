from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from app.adapters.auth.tokens import (
    MAX_TOKEN_LENGTH,
    AccessClaims,
    InvalidToken,
    TokenIssuer,
)

pytestmark = pytest.mark.unit

# 64 bytes: long enough that PyJWT does not warn when the tests sign HS512 with it.
SECRET = bytes(range(64))
OTHER_SECRET = bytes(range(64, 128))
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())


def issuer(secret: bytes = SECRET, **kwargs: Any) -> TokenIssuer:
    return TokenIssuer(secret, **kwargs)


def valid_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "iss": "crypto-checkout",
        "sub": "usr_1",
        "merchant_id": "mer_1",
        "role": "owner",
        "iat": NOW_TS,
        "exp": NOW_TS + 900,
        "jti": "a" * 32,
        "typ": "access",
    }
    payload.update(changes)
    return payload


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: object) -> str:
    return b64url(json.dumps(value).encode())


def refused(token: str, *, now: datetime = NOW) -> str:
    with pytest.raises(InvalidToken) as caught:
        issuer().verify_access(token, now=now)
    return caught.value.reason


# --- access tokens: the happy path --------------------------------------------------------------


def test_an_access_token_round_trips_its_claims() -> None:
    token, claims = issuer().issue_access("usr_1", "mer_1", "owner", now=NOW)

    assert claims == AccessClaims(
        user_id="usr_1",
        merchant_id="mer_1",
        role="owner",
        issued_at=NOW_TS,
        expires_at=NOW_TS + 15 * 60,
        token_id=claims.token_id,
    )
    assert re.fullmatch(r"[0-9a-f]{32}", claims.token_id)
    assert issuer().verify_access(token, now=NOW) == claims


def test_the_platform_admin_has_no_merchant() -> None:
    token, claims = issuer().issue_access("usr_admin", None, "admin", now=NOW)

    assert claims.merchant_id is None
    assert issuer().verify_access(token, now=NOW).merchant_id is None


def test_the_token_carries_the_documented_claims_and_header() -> None:
    token, claims = issuer().issue_access("usr_1", "mer_1", "owner", now=NOW)

    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    assert jwt.decode(token, options={"verify_signature": False}) == valid_payload(
        jti=claims.token_id
    )


def test_each_token_has_its_own_id() -> None:
    ids = {issuer().issue_access("usr_1", "mer_1", "owner", now=NOW)[1].token_id for _ in range(50)}
    assert len(ids) == 50


def test_the_ttl_is_configurable() -> None:
    _, claims = issuer(access_ttl=timedelta(minutes=5)).issue_access(
        "usr_1", "mer_1", "owner", now=NOW
    )
    assert claims.expires_at - claims.issued_at == 300


def test_the_real_clock_is_the_default() -> None:
    token, claims = issuer().issue_access("usr_1", "mer_1", "owner")
    assert issuer().verify_access(token) == claims
    assert abs(claims.issued_at - datetime.now(UTC).timestamp()) < 60


def test_a_32_byte_secret_is_enough() -> None:
    minimal = TokenIssuer(b"k" * 32)
    token, claims = minimal.issue_access("usr_1", "mer_1", "owner", now=NOW)
    assert minimal.verify_access(token, now=NOW) == claims


# --- time -----------------------------------------------------------------------------------------


def test_an_expired_token_is_refused() -> None:
    token, claims = issuer().issue_access("usr_1", "mer_1", "owner", now=NOW)
    expiry = datetime.fromtimestamp(claims.expires_at, UTC)

    assert issuer().verify_access(token, now=expiry + timedelta(seconds=9)) == claims  # leeway
    assert refused(token, now=expiry + timedelta(seconds=10)) == "expired"
    assert refused(token, now=NOW + timedelta(days=1)) == "expired"


def test_a_token_issued_in_the_future_is_refused() -> None:
    token, claims = issuer().issue_access("usr_1", "mer_1", "owner", now=NOW)

    assert issuer().verify_access(token, now=NOW - timedelta(seconds=10)) == claims  # leeway
    assert refused(token, now=NOW - timedelta(seconds=11)) == "issued in the future"


def test_a_naive_now_is_refused() -> None:
    token, _ = issuer().issue_access("usr_1", "mer_1", "owner", now=NOW)
    naive = datetime(2025, 3, 1, 12, 0)  # no tzinfo: the point of the test

    with pytest.raises(ValueError, match="timezone-aware"):
        issuer().issue_access("usr_1", "mer_1", "owner", now=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        issuer().verify_access(token, now=naive)


# --- signatures and algorithms ------------------------------------------------------------------


def test_a_tampered_signature_is_refused() -> None:
    token, _ = issuer().issue_access("usr_1", "mer_1", "owner", now=NOW)
    header, payload, signature = token.split(".")
    # A middle character: the last one may carry only padding bits.
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]

    assert refused(f"{header}.{payload}.{flipped}") == "bad signature"


def test_a_tampered_payload_is_refused() -> None:
    token, claims = issuer().issue_access("usr_1", "mer_1", "viewer", now=NOW)
    header, _, signature = token.split(".")
    escalated = b64url_json(valid_payload(role="admin", merchant_id=None, jti=claims.token_id))

    assert refused(f"{header}.{escalated}.{signature}") == "bad signature"


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token, _ = issuer(OTHER_SECRET).issue_access("usr_1", "mer_1", "owner", now=NOW)
    assert refused(token) == "bad signature"


def test_an_unsigned_alg_none_token_is_refused() -> None:
    header = b64url_json({"alg": "none", "typ": "JWT"})
    payload = b64url_json(valid_payload())

    assert refused(f"{header}.{payload}.") == "wrong algorithm"


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_a_token_signed_with_another_hmac_algorithm_and_our_secret_is_refused(
    algorithm: str,
) -> None:
    token = jwt.encode(valid_payload(), SECRET, algorithm=algorithm)
    assert refused(token) == "wrong algorithm"


def test_an_rs256_token_is_refused() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(valid_payload(), key, algorithm="RS256")
    assert refused(token) == "wrong algorithm"


def test_a_token_without_an_algorithm_is_refused() -> None:
    header = b64url_json({"typ": "JWT"})
    payload = b64url_json(valid_payload())
    signature = b64url(hmac.new(SECRET, f"{header}.{payload}".encode(), hashlib.sha256).digest())

    assert refused(f"{header}.{payload}.{signature}") == "wrong algorithm"


# --- claims -------------------------------------------------------------------------------------


def test_a_token_from_another_issuer_is_refused() -> None:
    token, _ = issuer(issuer="someone-else").issue_access("usr_1", "mer_1", "owner", now=NOW)
    assert refused(token) == "wrong issuer"


@pytest.mark.parametrize("claim", ["sub", "role", "iat", "exp", "iss", "jti", "typ", "merchant_id"])
def test_a_token_missing_a_claim_is_refused(claim: str) -> None:
    payload = valid_payload()
    del payload[claim]
    token = jwt.encode(payload, SECRET, algorithm="HS256")

    assert refused(token) == f"missing claim {claim}"


def test_a_null_claim_counts_as_missing() -> None:
    token = jwt.encode(valid_payload(role=None), SECRET, algorithm="HS256")
    assert refused(token) == "missing claim role"


def test_another_kind_of_token_is_refused() -> None:
    token = jwt.encode(valid_payload(typ="refresh"), SECRET, algorithm="HS256")
    assert refused(token) == "wrong token type"


@pytest.mark.parametrize(
    "changes",
    [
        {"iat": "2025-03-01"},
        {"exp": float(NOW_TS + 900)},
        {"exp": True},
        {"role": ""},
        {"role": ["owner"]},
        {"merchant_id": ""},
        {"merchant_id": 7},
    ],
)
def test_a_token_with_ill_typed_claims_is_refused(changes: dict[str, Any]) -> None:
    token = jwt.encode(valid_payload(**changes), SECRET, algorithm="HS256")
    assert refused(token) == "malformed claims"


@pytest.mark.parametrize(
    "changes", [{"sub": 1}, {"jti": 1}, {"aud": "somewhere"}], ids=["sub", "jti", "aud"]
)
def test_claims_pyjwt_itself_refuses_become_invalid_token(changes: dict[str, Any]) -> None:
    token = jwt.encode(valid_payload(**changes), SECRET, algorithm="HS256")
    assert refused(token) == "invalid claims"


# --- malformed input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not a token",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        f"{b64url(b'not json')}.{b64url_json(valid_payload())}.",
        f"{b64url_json(['alg', 'HS256'])}.{b64url_json(valid_payload())}.sig",
    ],
)
def test_a_malformed_token_is_refused(token: str) -> None:
    assert refused(token) == "malformed"


def test_a_payload_is_not_parsed_before_the_signature_is_checked() -> None:
    token = f"{b64url_json({'alg': 'HS256'})}.{b64url(b'not json')}.sig"
    assert refused(token) == "bad signature"


def test_a_payload_that_is_not_an_object_is_malformed() -> None:
    header = b64url_json({"alg": "HS256", "typ": "JWT"})
    payload = b64url_json(["not", "an", "object"])
    signature = b64url(hmac.new(SECRET, f"{header}.{payload}".encode(), hashlib.sha256).digest())

    assert refused(f"{header}.{payload}.{signature}") == "malformed"


def test_an_overlong_token_is_refused_without_being_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token, _ = issuer().issue_access("usr_1", "mer_1", "owner", now=NOW)
    _, payload, signature = token.split(".")
    padded_header = b64url_json({"alg": "HS256", "typ": "JWT", "x": "y" * MAX_TOKEN_LENGTH})

    def must_not_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("an overlong token was decoded")

    monkeypatch.setattr(jwt, "decode", must_not_decode)
    assert refused(f"{padded_header}.{payload}.{signature}") == "too long"
    assert refused(token + "A" * MAX_TOKEN_LENGTH) == "too long"


@given(st.text(max_size=300))
def test_no_text_raises_anything_but_invalid_token(text: str) -> None:
    with pytest.raises(InvalidToken):
        TokenIssuer(SECRET).verify_access(text, now=NOW)


@given(st.lists(st.text(alphabet="ABCabc012-_=+/.", max_size=40), min_size=1, max_size=4))
def test_no_dotted_segments_raise_anything_but_invalid_token(segments: list[str]) -> None:
    with pytest.raises(InvalidToken):
        TokenIssuer(SECRET).verify_access(".".join(segments), now=NOW)


# --- the issuer's configuration -----------------------------------------------------------------


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="31 bytes; HS256 needs at least 32"):
        TokenIssuer(b"k" * 31)
    with pytest.raises(ValueError, match="0 bytes"):
        TokenIssuer(b"")


def test_an_empty_issuer_or_a_non_positive_ttl_is_refused() -> None:
    with pytest.raises(ValueError, match="issuer"):
        TokenIssuer(SECRET, issuer="")
    with pytest.raises(ValueError, match="positive"):
        TokenIssuer(SECRET, access_ttl=timedelta(0))


def test_issuing_needs_a_user_a_role_and_a_merchant_or_none() -> None:
    for user_id, merchant_id, role in [
        ("", "mer_1", "owner"),
        ("usr_1", "", "owner"),
        ("usr_1", None, ""),
    ]:
        with pytest.raises(ValueError, match="needs a user id"):
            issuer().issue_access(user_id, merchant_id, role, now=NOW)


def test_the_issuer_repr_does_not_show_the_secret() -> None:
    text = repr(TokenIssuer(b"s3cr3t-" * 8))
    assert "s3cr3t" not in text
    assert "crypto-checkout" in text
