"""What merchants copy works: the example verifier, the test vectors and docs/webhooks.md agree.

The vectors are checked against an HMAC computed by ``cryptography`` (OpenSSL), not by our code,
so a bug in ``app.adapters.webhooks.signing`` cannot be hidden by vectors generated with that same
bug.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

from app.adapters.webhooks.schedule import DEFAULT_RETRY_SCHEDULE, format_duration
from app.adapters.webhooks.signing import SignatureError, signature_header, verify_signature

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "verify_webhook.py"
DOC = ROOT / "docs" / "webhooks.md"
VECTORS: list[dict[str, Any]] = json.loads(
    (ROOT / "docs" / "webhook-test-vectors.json").read_text(encoding="utf-8")
)["vectors"]


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verify_webhook_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


verify_webhook: Callable[..., dict[str, Any]] = load_example().verify_webhook


def openssl_hmac(secret: str, timestamp: int, body: bytes) -> str:
    mac = HMAC(secret.encode("utf-8"), hashes.SHA256())
    mac.update(str(timestamp).encode("ascii") + b"." + body)
    return mac.finalize().hex()


def vector_id(vector: dict[str, Any]) -> str:
    return str(vector["name"])


def test_there_are_enough_vectors_and_one_covers_a_rotation() -> None:
    assert len(VECTORS) >= 4
    assert any(len(vector["secrets"]) == 2 for vector in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=vector_id)
def test_each_vector_matches_an_independent_hmac(vector: dict[str, Any]) -> None:
    body = vector["body"].encode("utf-8")
    expected = f"t={vector['timestamp']}," + ",".join(
        f"v1={openssl_hmac(secret, vector['timestamp'], body)}" for secret in vector["secrets"]
    )

    assert vector["signature_header"] == expected
    assert signature_header(vector["secrets"], vector["timestamp"], body) == expected


@pytest.mark.parametrize("vector", VECTORS, ids=vector_id)
def test_each_vector_verifies_with_the_example_and_the_platform(vector: dict[str, Any]) -> None:
    body = vector["body"].encode("utf-8")
    header = vector["signature_header"]

    for secret in vector["secrets"]:
        event = verify_webhook(body, header, secret, now=vector["timestamp"])
        assert event == json.loads(body)
        verify_signature(header, body, secret, now=vector["timestamp"])


@pytest.mark.parametrize("vector", VECTORS, ids=vector_id)
def test_a_tampered_body_fails_both_verifiers(vector: dict[str, Any]) -> None:
    body = vector["body"].encode("utf-8") + b" "
    secret = vector["secrets"][0]

    with pytest.raises(ValueError, match="does not match"):
        verify_webhook(body, vector["signature_header"], secret, now=vector["timestamp"])
    with pytest.raises(SignatureError):
        verify_signature(vector["signature_header"], body, secret, now=vector["timestamp"])


@pytest.mark.parametrize("vector", VECTORS, ids=vector_id)
def test_an_old_request_fails_both_verifiers(vector: dict[str, Any]) -> None:
    body = vector["body"].encode("utf-8")
    later = vector["timestamp"] + 301
    secret = vector["secrets"][0]

    with pytest.raises(ValueError, match="tolerance"):
        verify_webhook(body, vector["signature_header"], secret, now=later)
    with pytest.raises(SignatureError, match="more than 300 s"):
        verify_signature(vector["signature_header"], body, secret, now=later)
    assert verify_webhook(body, vector["signature_header"], secret, tolerance=600, now=later)


def test_the_example_refuses_a_wrong_secret() -> None:
    vector = VECTORS[0]

    with pytest.raises(ValueError, match="does not match"):
        verify_webhook(
            vector["body"].encode(),
            vector["signature_header"],
            "whsec_wrong",
            now=vector["timestamp"],
        )


def test_the_example_checks_against_the_current_clock_by_default() -> None:
    vector = VECTORS[0]

    with pytest.raises(ValueError, match="tolerance"):
        verify_webhook(vector["body"].encode(), vector["signature_header"], vector["secrets"][0])


def test_the_example_accepts_a_fresh_request_signed_by_the_platform() -> None:
    import time

    now = int(time.time())
    body = b'{"id":"evt_1","type":"WebhookTest","data":{}}'
    header = signature_header(["whsec_fresh"], now, body)

    assert verify_webhook(body, header, "whsec_fresh")["type"] == "WebhookTest"


@pytest.mark.parametrize(
    "header",
    [
        "",
        "v1=" + "a" * 64,
        "t=1700000000",
        "t=1700000000,v0=" + "a" * 64,
        "t=soon,v1=" + "a" * 64,
        "t=١٧٠٠٠٠٠٠٠٠,v1=" + "a" * 64,
    ],
)
def test_the_example_refuses_a_malformed_header(header: str) -> None:
    with pytest.raises(ValueError, match="malformed"):
        verify_webhook(b"{}", header, "whsec_x", now=1_700_000_000)


# --- docs/webhooks.md ---------------------------------------------------------------------------


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def test_the_verification_function_in_the_docs_is_the_example_file_verbatim() -> None:
    section = doc_text().split("### The verification function", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL)

    assert block is not None
    assert block.group(1) == EXAMPLE.read_text(encoding="utf-8")


def test_the_docs_list_every_test_vector() -> None:
    section = doc_text().split("### Test vectors", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    separator = lines.index("|---|---|---|---|---|")
    rows = [line for line in lines[separator + 1 :] if line.startswith("| ")]
    table = []
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        table.append(
            {
                "name": cells[0],
                "secrets": re.findall(r"`([^`]+)`", cells[1]),
                "timestamp": int(cells[2].strip("`")),
                "body": json.loads(cells[3].strip("`")),
                "signature_header": cells[4].strip("`"),
            }
        )

    assert table == VECTORS


def test_the_docs_retry_table_is_the_default_schedule() -> None:
    section = doc_text().split("## Retries", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \| ([^|]+) \|$", section, re.MULTILINE)

    cumulative = 0.0
    expected = [("1", "immediately", "0")]
    for attempt, delay in enumerate(DEFAULT_RETRY_SCHEDULE, start=2):
        cumulative += delay
        expected.append((str(attempt), format_duration(delay), format_duration(cumulative)))
    assert [(n, delay.strip(), total.strip()) for n, delay, total in rows] == expected
    assert f"That is {len(DEFAULT_RETRY_SCHEDULE) + 1} attempts" in section
