"""The bot in webhook mode: each worker tells the Bot API (the stand-in) its
``PUBLIC_URL/telegram/webhook`` with a secret at start; updates are posted there, and what is
posted without the secret is refused."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.notifications.test_notices_end_to_end import (
    BOT_NAME,
    BOT_TOKEN,
    link_chat,
    new_user,
)
from tests.support.platform import WORKER_URL, Platform, running_platform
from tests.support.processes import eventually
from tests.support.telegram_sim import RunningTelegramSim, telegram_sim

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

SECRET = "webhook-secret-of-the-test-bot"
CHAT = 52_000_001


@pytest.fixture(scope="module")
def bot_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTelegramSim]:
    log = tmp_path_factory.mktemp("telegram-webhook") / "telegram-sim.log"
    with telegram_sim(
        log, "--bot", f"{BOT_TOKEN}={BOT_NAME}", "--webhook-retry-delay", "0.2"
    ) as sim:
        yield sim


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, bot_api: RunningTelegramSim
) -> Iterator[Platform]:
    with running_platform(
        tmp_path_factory.mktemp("webhook-mode"),
        workers=1,
        PUBLIC_URL=WORKER_URL,
        TELEGRAM_MODE="webhook",
        TELEGRAM_BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_API_URL=bot_api.url,
        TELEGRAM_BOT_USERNAME=BOT_NAME,
        TELEGRAM_WEBHOOK_SECRET=SECRET,
    ) as running:
        yield running


def test_updates_arrive_at_the_webhook_and_the_bot_answers(
    platform: Platform, bot_api: RunningTelegramSim
) -> None:
    webhook = eventually(
        lambda: bot_api.bot(BOT_TOKEN).get("webhook") or None, timeout=30, what="setWebhook"
    )
    assert webhook["url"] == f"{platform.url}/telegram/webhook", webhook
    # The commands are announced for Telegram's clients to list.
    commands = eventually(
        lambda: bot_api.bot(BOT_TOKEN).get("commands") or None, timeout=30, what="setMyCommands"
    )
    assert "invoice" in str(commands), commands

    _, owner = new_user(platform, platform.merchant_id)
    link_chat(platform, bot_api, owner, CHAT)
    before = len(bot_api.sent(BOT_TOKEN, CHAT))
    bot_api.say(BOT_TOKEN, CHAT, "/balance")
    answer = bot_api.wait_sent(BOT_TOKEN, CHAT, before + 1, timeout=30)[-1]
    assert answer["text"].startswith("Balance"), answer
    assert "Available:" in answer["text"] and "USDT" in answer["text"]


def test_a_post_without_the_secret_is_refused(platform: Platform) -> None:
    update = {"update_id": 1, "message": {"message_id": 1, "date": 0,
              "chat": {"id": CHAT, "type": "private"}, "text": "/balance"}}  # fmt: skip
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "not-the-secret-at-all"}):
        refused = httpx.post(
            f"{platform.url}/telegram/webhook", json=update, headers=headers, timeout=30
        )
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "telegram_secret_invalid"
