"""Notices on the whole platform: real Kafka, PostgreSQL and SMTP server (aiosmtpd, `make infra`),
the Tron simulator paying, the Telegram Bot API stand-in (telegram_sim/) that the bot polls
exactly as it would poll Telegram, and the Twilio stand-in (sms_sim/) for SMS.

A paid invoice reaches the merchant's user by email (in the SMTP server's Maildir) and in their
linked Telegram chat; a webhook endpoint disabled for failing reaches them by email, the backup of
webhooks; ``/invoice 9.99`` in the chat makes an invoice the simulator then pays, and the bot says
so; an unlinked chat and another merchant's chat hear nothing of it.
"""

from __future__ import annotations

import mailbox
import os
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.webhooks.conftest import WEBHOOK_TEST_SETTINGS
from tests.support.platform import Platform, run_cli, running_platform
from tests.support.processes import REPO_ROOT, eventually, free_port
from tests.support.sms_sim import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, SmsSimClient, launch_sms_sim
from tests.support.telegram_sim import RunningTelegramSim, telegram_sim

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

MAILDIR = Path(os.environ.get("CHECKOUT_LOCAL_DIR", REPO_ROOT / ".local")) / "mail" / "Maildir"
PASSWORD = "a notified user's password"
BOT_TOKEN = "7000000001:checkout-test-bot-token"
BOT_NAME = "checkout_test_bot"
# Telegram's private chats have the user's id; these are the test's people.
OWNER_CHAT, OTHER_CHAT, STRANGER_CHAT = 51_000_001, 51_000_002, 51_000_003


@pytest.fixture(scope="module")
def bot_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTelegramSim]:
    log = tmp_path_factory.mktemp("telegram") / "telegram-sim.log"
    with telegram_sim(log, "--bot", f"{BOT_TOKEN}={BOT_NAME}") as sim:
        yield sim


@pytest.fixture(scope="module")
def sms_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmsSimClient]:
    process, url = launch_sms_sim(tmp_path_factory.mktemp("sms") / "sms-sim.log")
    try:
        yield SmsSimClient(url)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, bot_api: RunningTelegramSim, sms_api: SmsSimClient
) -> Iterator[Platform]:
    with running_platform(
        tmp_path_factory.mktemp("notices"),
        workers=1,
        TELEGRAM_MODE="polling",
        TELEGRAM_BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_API_URL=bot_api.url,
        TELEGRAM_BOT_USERNAME=BOT_NAME,
        SMS_PROVIDER="twilio",
        TWILIO_BASE_URL=sms_api.url,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        SMS_FROM=FROM_NUMBER,
        **WEBHOOK_TEST_SETTINGS,
    ) as running:
        yield running


def new_user(
    platform: Platform, merchant_id: str, role: str = "owner"
) -> tuple[str, dict[str, str]]:
    """A verified user of the merchant (made by an operator) and their session's headers."""
    email = f"{role}-{uuid.uuid4().hex[:10]}@notices.example"
    run_cli(platform, "create-user", "--merchant", merchant_id, "--email", email,
            "--role", role, stdin=PASSWORD + "\n")  # fmt: skip
    session = httpx.post(
        f"{platform.url}/api/v1/auth/login",
        json={"email": email, "password": PASSWORD},
        timeout=30,
    )
    assert session.status_code == 200, session.text
    return email, {"Authorization": f"Bearer {session.json()['access_token']}"}


def link_chat(
    platform: Platform, bot_api: RunningTelegramSim, user: dict[str, str], chat_id: int
) -> None:
    """The user's deep link opened in Telegram: ``/start <token>`` from their chat."""
    offer = httpx.post(
        f"{platform.url}/api/v1/notification-preferences/telegram-link", headers=user, timeout=30
    )
    assert offer.status_code == 201, offer.text
    body = offer.json()
    assert body["deep_link"] == f"https://t.me/{BOT_NAME}?start={body['token']}"
    before = len(bot_api.sent(BOT_TOKEN, chat_id))
    bot_api.say(BOT_TOKEN, chat_id, body["command"], first_name="Ana")
    answer = bot_api.wait_sent(BOT_TOKEN, chat_id, before + 1, timeout=30)[-1]
    assert answer["text"].startswith("Linked."), answer
    linked = httpx.get(
        f"{platform.url}/api/v1/notification-preferences/telegram", headers=user, timeout=30
    )
    assert linked.status_code == 200 and linked.json()["chat_id"] == chat_id


def received_by(address: str, subject: str) -> Message | None:
    box = mailbox.Maildir(MAILDIR, create=False)
    found = [
        m for m in box if address in str(m.get("To", "")) and subject in str(m.get("Subject", ""))
    ]
    return found[-1] if found else None


def part_of(message: Message, content_type: str) -> str:
    for part in message.walk():
        if part.get_content_type() == content_type:
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError(f"no {content_type} part")


def texts(bot_api: RunningTelegramSim, chat_id: int) -> list[str]:
    return [m.get("text") or m.get("caption") or "" for m in bot_api.sent(BOT_TOKEN, chat_id)]


def test_a_paid_invoice_reaches_email_and_the_linked_chat_and_nobody_else(
    platform: Platform, bot_api: RunningTelegramSim
) -> None:
    email, owner = new_user(platform, platform.merchant_id)
    chosen = httpx.patch(
        f"{platform.url}/api/v1/notification-preferences",
        json={"email": ["invoice_paid", "webhook_endpoint_disabled"]},
        headers=owner,
        timeout=30,
    )
    assert chosen.status_code == 200, chosen.text
    link_chat(platform, bot_api, owner, OWNER_CHAT)
    _, other_owner = new_user(platform, platform.other_merchant_id)
    link_chat(platform, bot_api, other_owner, OTHER_CHAT)
    other_before = len(texts(bot_api, OTHER_CHAT))

    invoice = platform.create_invoice("9.99", description="Blue mug")
    platform.pay_and_confirm(invoice, "9.99")
    platform.wait_invoice(invoice["id"], lambda i: i["status"] == "paid", "the invoice paid")
    paid_seen = time.monotonic()

    # By email within 5 s of the invoice reading paid, with the amount and a link to it.
    message = eventually(
        lambda: received_by(email, f"Invoice {invoice['id']} paid"),
        timeout=5,
        what=f"the invoice_paid email to {email}",
        every=0.1,
    )
    print(f"invoice_paid email {time.monotonic() - paid_seen:.2f} s after the invoice read paid")
    text = part_of(message, "text/plain")
    assert "9.99 USDT" in message["Subject"]
    assert f"/dashboard/invoices/{invoice['id']}" in text
    html = part_of(message, "text/html")
    assert f"/dashboard/invoices/{invoice['id']}" in html and "9.99" in html

    # In the linked chat, with the amount and the link.
    def pushed() -> str | None:
        # Its settlement is pushed too, and may come first.
        headline = f"Invoice {invoice['id']} paid"
        return next((t for t in texts(bot_api, OWNER_CHAT) if headline in t), None)

    push = eventually(pushed, timeout=10, what="the invoice_paid push to the owner's chat")
    assert "paid" in push and "9.99" in push

    # Another merchant's linked chat and a stranger's chat hear nothing of it.
    assert not [t for t in texts(bot_api, OTHER_CHAT)[other_before:] if invoice["id"] in t]
    assert bot_api.sent(BOT_TOKEN, STRANGER_CHAT) == []

    # What became of the notices, as the user can read it.
    sent = httpx.get(
        f"{platform.url}/api/v1/notification-preferences/deliveries", headers=owner, timeout=30
    ).json()["data"]
    about = {(d["channel"], d["status"]) for d in sent if d["subject_id"] == invoice["id"]}
    assert about == {("email", "sent"), ("telegram", "sent")}


def test_an_unlinked_chat_gets_no_data(platform: Platform, bot_api: RunningTelegramSim) -> None:
    for command in ("/balance", "/invoices", "/invoice 5", "/payouts", "/start not-a-token"):
        before = len(bot_api.sent(BOT_TOKEN, STRANGER_CHAT))
        bot_api.say(BOT_TOKEN, STRANGER_CHAT, command)
        answer = bot_api.wait_sent(BOT_TOKEN, STRANGER_CHAT, before + 1, timeout=30)[-1]
        assert "not linked" in answer["text"] or "not valid" in answer["text"], (command, answer)
        assert "USDT" not in answer["text"] and "inv_" not in answer["text"]


def test_invoice_from_telegram_is_paid_and_the_bot_says_so(
    platform: Platform, bot_api: RunningTelegramSim
) -> None:
    _, owner = new_user(platform, platform.merchant_id)
    chat = 51_000_010
    link_chat(platform, bot_api, owner, chat)
    before = len(bot_api.sent(BOT_TOKEN, chat))

    bot_api.say(BOT_TOKEN, chat, "/invoice 9.99 Coffee beans")
    answer = bot_api.wait_sent(BOT_TOKEN, chat, before + 1, timeout=30)[-1]
    assert answer["method"] == "sendPhoto", answer
    assert answer["photo"]["content_type"] == "image/png" or answer["photo"].get("sha256")
    found = re.search(r"/pay/(inv_[0-9a-f]+)", answer["caption"])
    assert found, answer["caption"]
    invoice = platform.invoice(found.group(1))
    assert invoice["amount"] == "9.99" and invoice["description"] == "Coffee beans"

    platform.pay_and_confirm(invoice, "9.99")

    def paid_push() -> str | None:
        return next(
            (t for t in texts(bot_api, chat) if invoice["id"] in t and "paid" in t.lower()), None
        )

    eventually(paid_push, timeout=30, what="the bot's 'paid' push")
    bot_api.say(BOT_TOKEN, chat, "/invoices")
    listed = eventually(
        lambda: next((t for t in texts(bot_api, chat) if t.startswith("Last invoices")), None),
        timeout=30,
        what="the /invoices answer",
    )
    assert invoice["id"] in listed and "paid" in listed


def test_a_disabled_webhook_endpoint_is_told_by_email(
    platform: Platform, bot_api: RunningTelegramSim
) -> None:
    email, owner = new_user(platform, platform.merchant_id)
    httpx.patch(
        f"{platform.url}/api/v1/notification-preferences",
        json={"email": ["webhook_endpoint_disabled"]},
        headers=owner,
        timeout=30,
    ).raise_for_status()
    dead_url = f"http://127.0.0.1:{free_port()}/hooks"  # nothing listens there
    created = httpx.post(
        f"{platform.url}/api/v1/webhook-endpoints",
        json={"url": dead_url, "event_types": ["InvoiceCreated"]},
        headers=platform.headers(),
        timeout=30,
    )
    assert created.status_code == 201, created.text
    endpoint: dict[str, Any] = created.json()
    platform.create_invoice("1.50")

    # 9 attempts over ~15 s, disabled after failing for 11 s (WEBHOOK_TEST_SETTINGS).
    message = eventually(
        lambda: received_by(email, "Webhook endpoint disabled"),
        timeout=90,
        what="the webhook_endpoint_disabled email",
        every=0.5,
    )
    text = part_of(message, "text/plain")
    assert dead_url in text
    assert f"/dashboard/webhooks/{endpoint['id']}" in text


def test_the_daily_summary_reaches_who_chose_it_once(
    platform: Platform, bot_api: RunningTelegramSim
) -> None:
    email, owner = new_user(platform, platform.merchant_id)
    httpx.patch(
        f"{platform.url}/api/v1/notification-preferences",
        json={"email": ["daily_summary"], "telegram": []},
        headers=owner,
        timeout=30,
    ).raise_for_status()
    invoice = platform.create_invoice("12.50")
    platform.pay_and_confirm(invoice, "12.50")
    platform.wait_settlement(invoice["id"])
    today = datetime.now(UTC).date().isoformat()

    def mine(answer: dict[str, Any]) -> dict[str, Any] | None:
        return next((n for n in answer["notices"] if n["user_id"] in owner_ids), None)

    owner_ids = {
        row["user_id"]
        for row in run_cli(
            platform, "notices", "daily-summary", "--date", today, "--dry-run", "--json"
        )["notices"]
        if row["merchant_id"] == platform.merchant_id
    }
    assert owner_ids, "the user who chose the daily summary is not among those told"

    def settled_figures() -> dict[str, Any] | None:
        answer = run_cli(platform, "notices", "daily-summary", "--date", today, "--dry-run",
                         "--json")  # fmt: skip
        found = mine(answer)
        return found if found and found["facts"]["settlements"] != "0" else None

    planned = eventually(settled_figures, timeout=30, what="the day's settled figures")
    assert planned["channel"] == "email"
    run_cli(platform, "notices", "daily-summary", "--date", today, "--json")
    run_cli(platform, "notices", "daily-summary", "--date", today, "--json")  # twice: sent once

    message = eventually(
        lambda: received_by(email, f"Daily summary {today}"),
        timeout=15,
        what="the daily summary email",
    )
    text = part_of(message, "text/plain")
    assert f"Settlements:         {planned['facts']['settlements']}" in text
    assert f"{planned['facts']['settled_net']} USDT" in text
    time.sleep(2)  # the second run's notice, were it not the same one, would be here by now
    box = mailbox.Maildir(MAILDIR, create=False)
    subjects = [str(m["Subject"]) for m in box if email in str(m.get("To", ""))]
    assert sum(1 for s in subjects if s.startswith(f"Daily summary {today}")) == 1, subjects


def test_sms_reaches_the_number_and_a_refused_number_is_not_retried(
    platform: Platform, bot_api: RunningTelegramSim, sms_api: SmsSimClient
) -> None:
    number = f"+4915{uuid.uuid4().int % 10**9:09d}"
    _, owner = new_user(platform, platform.merchant_id)
    chosen = httpx.patch(
        f"{platform.url}/api/v1/notification-preferences",
        json={"sms": ["invoice_paid"], "sms_number": number, "email": [], "telegram": []},
        headers=owner,
        timeout=30,
    )
    assert chosen.status_code == 200, chosen.text
    invoice = platform.create_invoice("3.25")
    platform.pay_and_confirm(invoice, "3.25")

    [sms] = sms_api.wait_messages(number, 1, timeout=30)
    assert sms["from"] == FROM_NUMBER
    assert invoice["id"] in sms["body"] and "3.25" in sms["body"]
    assert len(sms["body"]) <= 320

    # A number Twilio refuses for good (its test number for "unsubscribed"): rejected, not retried.
    refused = "+15005550004"
    httpx.patch(
        f"{platform.url}/api/v1/notification-preferences",
        json={"sms_number": refused},
        headers=owner,
        timeout=30,
    ).raise_for_status()
    second = platform.create_invoice("3.50")
    platform.pay_and_confirm(second, "3.50")

    def outcome() -> dict[str, Any] | None:
        rows = httpx.get(
            f"{platform.url}/api/v1/notification-preferences/deliveries",
            headers=owner,
            timeout=30,
        ).json()["data"]
        return next(
            (r for r in rows if r["subject_id"] == second["id"] and r["status"] != "pending"), None
        )

    row = eventually(outcome, timeout=30, what="the refused SMS's outcome")
    assert row["status"] == "rejected" and "21610" in row["last_error"], row
    assert row["attempts"] == 1
