"""Sign-up on the whole platform with the real SMTP server `make infra` starts: the link arrives
as an email in its Maildir, confirming it unlocks the first API key."""

from __future__ import annotations

import mailbox
import os
import re
import uuid
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import httpx
import pytest

from tests.support.platform import Platform, running_platform
from tests.support.processes import REPO_ROOT, eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

MAILDIR = Path(os.environ.get("CHECKOUT_LOCAL_DIR", REPO_ROOT / ".local")) / "mail" / "Maildir"
PASSWORD = "a sign-up password of some length"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(
        tmp_path_factory.mktemp("signup"), workers=1, SIGNUP_MODE="open"
    ) as running:
        yield running


def received_by(address: str) -> Message | None:
    box = mailbox.Maildir(MAILDIR, create=False)
    found = [message for message in box if address in str(message.get("To", ""))]
    return found[-1] if found else None


def text_of(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text part")


def test_a_new_merchant_confirms_the_emailed_link_then_creates_a_key(platform: Platform) -> None:
    email = f"founder-{uuid.uuid4().hex[:8]}@mugs.example"
    answer = httpx.post(
        f"{platform.url}/api/v1/signup",
        json={"business_name": "Mug & Co", "email": email, "password": PASSWORD},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["verification_email"] == "sent"
    message = eventually(lambda: received_by(email), timeout=10, what=f"the email to {email}")
    assert message["Subject"] == "Confirm your email address"
    assert message["From"].endswith("<no-reply@checkout.localhost>")
    link = re.search(r"(http://\S+/dashboard/verify\?token=(ver_\S+))", text_of(message))
    assert link, text_of(message)
    assert link.group(1).startswith("http://127.0.0.1:6066/dashboard/verify")  # PUBLIC_URL

    session = httpx.post(
        f"{platform.url}/api/v1/auth/login",
        json={"email": email, "password": PASSWORD},
        timeout=30,
    ).json()
    owner = {"Authorization": f"Bearer {session['access_token']}"}
    key = {"name": "shop", "scopes": ["invoices:read", "invoices:write"]}
    refused = httpx.post(f"{platform.url}/api/v1/api-keys", json=key, headers=owner, timeout=30)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "email_not_verified"

    verified = httpx.post(
        f"{platform.url}/api/v1/signup/verify", json={"token": link.group(2)}, timeout=30
    )
    assert verified.status_code == 200, verified.text

    def created() -> httpx.Response | None:
        answer = httpx.post(f"{platform.url}/api/v1/api-keys", json=key, headers=owner, timeout=30)
        return answer if answer.status_code == 201 else None

    secret = eventually(created, timeout=10, what="the first API key").json()["secret"]
    invoice = httpx.post(
        f"{platform.url}/api/v1/invoices",
        json={"amount": "5"},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )
    assert invoice.status_code == 201, invoice.text
