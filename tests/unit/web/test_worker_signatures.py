"""Requests between workers are believed only under a valid, fresh signature."""

from __future__ import annotations

import pytest

from app.runtime.worker_signatures import (
    CLIENT_ADDRESS,
    MAX_SKEW,
    SIGNATURE,
    TIMESTAMP,
    BadWorkerSignature,
    WorkerSignatures,
)

pytestmark = pytest.mark.unit

SECRET = "s" * 32
NOW = 1_800_000_000.0


def signed(**overrides: str) -> dict[str, str]:
    headers = WorkerSignatures(SECRET, now=lambda: NOW).headers(
        "POST",
        "/api/v1/invoices/inv_1/cancel?x=1",
        b'{"reason":"out of stock"}',
        routed_from="http://10.0.0.2:6066",
        client_address="198.51.100.7",
    )
    return headers | overrides


def verify(headers: dict[str, str], *, body: bytes = b'{"reason":"out of stock"}', at: float = NOW):
    return WorkerSignatures(SECRET, now=lambda: at).verify(
        "POST", "/api/v1/invoices/inv_1/cancel?x=1", body, headers
    )


def test_a_signed_request_tells_who_forwarded_it_and_for_whom() -> None:
    worker = verify(signed())
    assert worker.routed_from == "http://10.0.0.2:6066"
    assert worker.client_address == "198.51.100.7"


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ({CLIENT_ADDRESS: "1.2.3.4"}, "does not match"),
        ({SIGNATURE: "0" * 64}, "does not match"),
        ({TIMESTAMP: "soon"}, "not a Unix time"),
        ({TIMESTAMP: str(int(NOW) - MAX_SKEW - 5)}, "expired"),
    ],
)
def test_a_tampered_or_stale_request_is_refused(tamper: dict[str, str], reason: str) -> None:
    with pytest.raises(BadWorkerSignature, match=reason):
        verify(signed(**tamper))


def test_the_body_and_the_secret_are_covered() -> None:
    with pytest.raises(BadWorkerSignature):
        verify(signed(), body=b'{"reason":"changed"}')
    other = WorkerSignatures("t" * 32, now=lambda: NOW)
    with pytest.raises(BadWorkerSignature):
        other.verify("POST", "/api/v1/invoices/inv_1/cancel?x=1", b"", signed())


def test_a_missing_header_is_named() -> None:
    headers = signed()
    del headers[SIGNATURE]
    with pytest.raises(BadWorkerSignature, match=SIGNATURE):
        verify(headers)


def test_a_captured_request_is_good_for_a_minute_only() -> None:
    verify(signed(), at=NOW + MAX_SKEW)
    with pytest.raises(BadWorkerSignature, match="expired"):
        verify(signed(), at=NOW + MAX_SKEW + 1)
