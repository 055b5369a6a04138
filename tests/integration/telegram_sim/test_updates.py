"""Updates reach aiogram as from Telegram: long polling, a Dispatcher, and webhooks.

The stand-in's pauses are short (module fixture: webhook retries after 0.05 s), so the whole
module runs in a few seconds; the timing assertions are loose enough for a loaded machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.exceptions import TelegramConflictError
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from tests.integration.telegram_sim.conftest import CHAT_ID, TOKEN
from tests.support.telegram_sim import RunningTelegramSim

pytestmark = pytest.mark.integration

SECRET = "webhook-secret_42"


def linking_router() -> Router:
    """A stand-in for the platform's /start handling: deep links carry a linking code."""
    router = Router()

    @router.message(CommandStart(deep_link=True))
    async def link(message: Message, command: CommandObject) -> None:
        await message.answer(
            f"Linking code <code>{command.args}</code> received", parse_mode="HTML"
        )

    @router.message(CommandStart())
    async def welcome(message: Message) -> None:
        await message.answer("Welcome! Open the dashboard to link this chat.")

    return router


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Blocking /sim/ waits off the event loop, so aiogram's own tasks keep running."""
    return await asyncio.to_thread(function, *args)


async def test_long_poll_returns_a_message_typed_while_it_waits(
    sim: RunningTelegramSim, bot: Bot
) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    await in_thread(sim.say, TOKEN, CHAT_ID, "/start inv_42")
    [update] = await poll
    assert time.monotonic() - started < 4
    message = update.message
    assert message is not None and message.text == "/start inv_42"
    assert message.chat.id == CHAT_ID == (message.from_user.id if message.from_user else None)
    assert message.chat.type == "private"
    assert [(e.type, e.offset, e.length) for e in message.entities or []] == [("bot_command", 0, 6)]


async def test_long_poll_answers_empty_after_its_timeout(bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == []
    assert 0.9 <= time.monotonic() - started < 3


async def test_offset_confirms_earlier_updates(sim: RunningTelegramSim, bot: Bot) -> None:
    for text in ("one", "two", "three"):
        sim.say(TOKEN, CHAT_ID, text)
    first = await bot.get_updates()
    assert [u.message.text for u in first if u.message] == ["one", "two", "three"]
    assert await bot.get_updates(limit=1) == first[:1]  # nothing confirmed yet
    rest = await bot.get_updates(offset=first[1].update_id)
    assert [u.message.text for u in rest if u.message] == ["two", "three"]
    assert sim.bot(TOKEN)["pending_updates"] == 2
    assert await bot.get_updates(offset=first[-1].update_id + 1) == []
    assert sim.bot(TOKEN)["pending_updates"] == 0


async def test_a_second_poller_ends_the_first_with_a_conflict(bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    second = asyncio.create_task(bot.get_updates(timeout=0))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await first
    assert await second == []


async def test_dispatcher_polling_handles_a_deep_link_start(
    sim: RunningTelegramSim, bot: Bot
) -> None:
    dispatcher = Dispatcher()
    dispatcher.include_router(linking_router())
    polling = asyncio.create_task(
        dispatcher.start_polling(
            bot, polling_timeout=1, handle_signals=False, close_bot_session=False
        )
    )
    try:
        await in_thread(sim.say, TOKEN, CHAT_ID, "/start inv_42")
        [reply] = await in_thread(sim.wait_sent, TOKEN, CHAT_ID, 1)
        assert reply["text"] == "Linking code inv_42 received"
        assert reply["entities"] == [{"type": "code", "offset": 13, "length": 6}]
        await in_thread(sim.say, TOKEN, CHAT_ID, "/start")
        replies = await in_thread(sim.wait_sent, TOKEN, CHAT_ID, 2)
        assert replies[1]["text"].startswith("Welcome!")
    finally:
        await dispatcher.stop_polling()
        await polling


@asynccontextmanager
async def webhook_server(
    dispatcher: Dispatcher, bot: Bot, *, secret: str, background: bool = True
) -> AsyncIterator[str]:
    """aiogram's own webhook handler on a free loopback port; yields its URL."""
    app = web.Application()
    SimpleRequestHandler(
        dispatcher, bot, secret_token=secret, handle_in_background=background
    ).register(app, path="/telegram/webhook")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/telegram/webhook"
    finally:
        await runner.cleanup()


async def eventually(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 5
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_webhook_receives_updates_with_its_secret(sim: RunningTelegramSim, bot: Bot) -> None:
    dispatcher = Dispatcher()
    dispatcher.include_router(linking_router())
    async with webhook_server(dispatcher, bot, secret=SECRET) as url:
        assert await bot.set_webhook(url, secret_token=SECRET, drop_pending_updates=True)
        info = await bot.get_webhook_info()
        assert info.url == url and info.pending_update_count == 0
        with pytest.raises(TelegramConflictError, match="can't use getUpdates method while"):
            await bot.get_updates()
        await in_thread(sim.say, TOKEN, CHAT_ID, "/start inv_7")
        [reply] = await in_thread(sim.wait_sent, TOKEN, CHAT_ID, 1)
        assert reply["text"] == "Linking code inv_7 received"
        assert (await bot.get_webhook_info()).pending_update_count == 0
        assert await bot.delete_webhook()
    assert await bot.get_updates(timeout=0) == []


async def test_refused_webhook_deliveries_are_retried_and_reported(
    sim: RunningTelegramSim, bot: Bot
) -> None:
    dispatcher = Dispatcher()
    dispatcher.include_router(linking_router())
    async with webhook_server(dispatcher, bot, secret=SECRET) as url:
        await bot.set_webhook(url, secret_token="the-wrong-secret")
        await in_thread(sim.say, TOKEN, CHAT_ID, "/start inv_9")

        async def refused() -> bool:
            info = await bot.get_webhook_info()
            return info.last_error_message == "Wrong response from the webhook: 401 Unauthorized"

        await eventually(refused, "the webhook's 401 in getWebhookInfo")
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 1 and info.last_error_date is not None
        assert sim.sent(TOKEN, CHAT_ID) == []
        await bot.set_webhook(url, secret_token=SECRET)  # fixed: the pending update goes out
        [reply] = await in_thread(sim.wait_sent, TOKEN, CHAT_ID, 1)
        assert reply["text"] == "Linking code inv_9 received"
        await bot.delete_webhook()


async def test_a_webhook_may_answer_with_a_method_call(sim: RunningTelegramSim, bot: Bot) -> None:
    router = Router()

    @router.message()
    async def echo(message: Message) -> Any:
        return message.answer(f"echo: {message.text}")  # not awaited: sent in the HTTP answer

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    async with webhook_server(dispatcher, bot, secret=SECRET, background=False) as url:
        await bot.set_webhook(url, secret_token=SECRET)
        await in_thread(sim.say, TOKEN, CHAT_ID, "ping")
        [reply] = await in_thread(sim.wait_sent, TOKEN, CHAT_ID, 1)
        assert reply["text"] == "echo: ping"
        await bot.delete_webhook()


async def test_a_webhook_that_is_down_keeps_updates_for_get_updates(
    sim: RunningTelegramSim, bot: Bot
) -> None:
    async with webhook_server(Dispatcher(), bot, secret=SECRET) as url:
        pass  # the server is gone: its port refuses connections
    await bot.set_webhook(url)
    sim.say(TOKEN, CHAT_ID, "are you there?")

    async def refused() -> bool:
        return (await bot.get_webhook_info()).last_error_message == "Connection refused"

    await eventually(refused, "'Connection refused' in getWebhookInfo")
    await bot.delete_webhook()
    [update] = await bot.get_updates(timeout=0)
    assert update.message is not None and update.message.text == "are you there?"
