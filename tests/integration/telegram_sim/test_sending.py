"""aiogram sends through the stand-in as through Telegram: messages, photos, errors, faults.

Each test drives a real aiogram Bot (AiohttpSession, the same form encoding production uses)
and checks both sides: what aiogram gets back, and what the user would see (read at /sim/).
"""

from __future__ import annotations

import base64
import hashlib
import io

import httpx
import pytest
import segno
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import TelegramMethod
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
)

from tests.integration.telegram_sim.conftest import CHAT_ID, TOKEN, USERNAME, make_bot
from tests.support.telegram_sim import RunningTelegramSim

pytestmark = pytest.mark.integration

PAY_BUTTON = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="Open invoice", callback_data="invoice:42")]]
)


def qr_png(payload: str, scale: int = 4) -> tuple[bytes, tuple[int, int]]:
    qr = segno.make(payload)
    buffer = io.BytesIO()
    qr.save(buffer, kind="png", scale=scale)
    width, height = qr.symbol_size(scale=scale)
    return buffer.getvalue(), (int(width), int(height))


async def test_get_me_is_the_registered_bot(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (123456, True, USERNAME)


async def test_unknown_token_is_unauthorized_and_unknown_method_not_found(
    sim: RunningTelegramSim, bot: Bot
) -> None:
    stranger = make_bot(sim, "999:unknown-token")
    try:
        with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
            await stranger.get_me()
    finally:
        await stranger.session.close()

    class GetNothing(TelegramMethod[bool]):
        __returning__ = bool
        __api_method__ = "getNothing"

    with pytest.raises(TelegramNotFound, match="Not Found"):
        await bot(GetNothing())


async def test_html_message_arrives_as_the_user_sees_it(sim: RunningTelegramSim, bot: Bot) -> None:
    sim.say(TOKEN, CHAT_ID, "hello", first_name="Ann")
    message = await bot.send_message(
        CHAT_ID,
        "<b>Paid</b> 9.99 USDT &amp; <a href='https://example.com/i/42'>receipt</a>",
        parse_mode="HTML",
        reply_markup=PAY_BUTTON,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )
    assert message.text == "Paid 9.99 USDT & receipt"
    assert [(e.type, e.offset, e.length) for e in message.entities or []] == [
        ("bold", 0, 4),
        ("text_link", 17, 7),
    ]
    assert message.chat.id == CHAT_ID and message.chat.first_name == "Ann"
    assert message.from_user is not None and message.from_user.id == bot.id
    assert message.message_id == 2  # the user's "hello" was 1: one sequence per private chat
    [sent] = sim.sent(TOKEN, CHAT_ID)
    assert sent["message_id"] == message.message_id
    assert sent["method"] == "sendMessage"
    assert sent["text"] == "Paid 9.99 USDT & receipt"
    assert sent["raw_text"].startswith("<b>Paid</b>")
    assert sent["parse_mode"] == "HTML"
    assert sent["reply_markup"] == {
        "inline_keyboard": [[{"text": "Open invoice", "callback_data": "invoice:42"}]]
    }
    assert sent["link_preview_options"] == {"is_disabled": True}


@pytest.mark.parametrize(
    ("text", "description"),
    [
        ("<b>9.99</i>", 'Unmatched end tag at byte offset 7, expected "</b>", found "</i>"'),
        ("amount < 10 USDT", 'Unsupported start tag "" at byte offset 7'),
        ("<b>Paid", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
    ],
)
async def test_bad_html_is_refused_and_nothing_is_delivered(
    sim: RunningTelegramSim, bot: Bot, text: str, description: str
) -> None:
    sim.say(TOKEN, CHAT_ID, "hi")
    with pytest.raises(TelegramBadRequest) as refused:
        await bot.send_message(CHAT_ID, text, parse_mode="HTML")
    assert refused.value.message == f"Bad Request: can't parse entities: {description}"
    assert sim.sent(TOKEN, CHAT_ID) == []


async def test_text_limits_are_telegrams(sim: RunningTelegramSim, bot: Bot) -> None:
    sim.say(TOKEN, CHAT_ID, "hi")
    with pytest.raises(TelegramBadRequest, match="Bad Request: message text is empty"):
        await bot.send_message(CHAT_ID, "<b></b>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="Bad Request: message is too long"):
        await bot.send_message(CHAT_ID, "x" * 4097)
    assert (await bot.send_message(CHAT_ID, "x" * 4096)).text == "x" * 4096


async def test_unknown_chat_and_a_user_who_blocked_the_bot(
    sim: RunningTelegramSim, bot: Bot
) -> None:
    with pytest.raises(TelegramBadRequest, match="Bad Request: chat not found"):
        await bot.send_message(CHAT_ID, "nobody wrote to the bot from this chat")
    sim.say(TOKEN, CHAT_ID, "/start")
    sim.block(TOKEN, CHAT_ID)
    with pytest.raises(TelegramForbiddenError, match="Forbidden: bot was blocked by the user"):
        await bot.send_message(CHAT_ID, "payment received")
    sim.unblock(TOKEN, CHAT_ID)
    await bot.send_message(CHAT_ID, "payment received")
    assert [m["text"] for m in sim.sent(TOKEN, CHAT_ID)] == ["payment received"]


async def test_photo_upload_keeps_its_bytes_and_size(sim: RunningTelegramSim, bot: Bot) -> None:
    sim.say(TOKEN, CHAT_ID, "/qr")
    png, (width, height) = qr_png("tron:TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t?amount=9.99")
    message = await bot.send_photo(
        CHAT_ID,
        BufferedInputFile(png, filename="invoice.png"),
        caption="Pay <b>9.99 USDT</b>",
        parse_mode="HTML",
    )
    assert message.photo is not None
    largest = message.photo[-1]
    assert (largest.width, largest.height, largest.file_size) == (width, height, len(png))
    assert message.caption == "Pay 9.99 USDT"
    [sent] = sim.sent(TOKEN, CHAT_ID)
    assert sent["method"] == "sendPhoto" and sent["caption"] == "Pay 9.99 USDT"
    assert sent["photo"]["sha256"] == hashlib.sha256(png).hexdigest()
    assert sent["photo"]["content_type"] == "image/png"
    assert sent["photo"]["size"] == len(png)
    assert base64.b64decode(sent["photo"]["base64"]) == png

    again = await bot.send_photo(CHAT_ID, largest.file_id)  # a file_id is reusable
    assert again.photo is not None and again.photo[-1].file_unique_id == largest.file_unique_id
    assert sim.sent(TOKEN, CHAT_ID)[-1]["photo"]["sha256"] == sent["photo"]["sha256"]


async def test_photo_that_is_not_an_image_or_too_long_a_caption(
    sim: RunningTelegramSim, bot: Bot
) -> None:
    sim.say(TOKEN, CHAT_ID, "/qr")
    with pytest.raises(TelegramBadRequest, match="Bad Request: IMAGE_PROCESS_FAILED"):
        await bot.send_photo(CHAT_ID, BufferedInputFile(b"GIF89a not a png", filename="x.gif"))
    png, _ = qr_png("x")
    with pytest.raises(TelegramBadRequest, match="Bad Request: message caption is too long"):
        await bot.send_photo(CHAT_ID, BufferedInputFile(png, filename="qr.png"), caption="c" * 1025)
    with pytest.raises(TelegramBadRequest, match="wrong file identifier/HTTP URL specified"):
        await bot.send_photo(CHAT_ID, "AgACnot-a-file-id")
    assert sim.sent(TOKEN, CHAT_ID) == []


async def test_planned_faults_surface_as_aiogram_exceptions(
    sim: RunningTelegramSim, bot: Bot
) -> None:
    sim.say(TOKEN, CHAT_ID, "hi")
    sim.fault(TOKEN, "sendMessage", 429, retry_after=7)
    sim.fault(TOKEN, "sendMessage", 500)
    with pytest.raises(TelegramRetryAfter) as limited:
        await bot.send_message(CHAT_ID, "first")
    assert limited.value.retry_after == 7
    assert "Original description: Too Many Requests: retry after 7" in limited.value.message
    with pytest.raises(TelegramServerError, match="Internal Server Error"):
        await bot.send_message(CHAT_ID, "second")
    await bot.send_message(CHAT_ID, "third")
    assert [m["text"] for m in sim.sent(TOKEN, CHAT_ID)] == ["third"]


async def test_commands_are_kept_per_scope(bot: Bot) -> None:
    commands = [
        BotCommand(command="start", description="Link this chat to your merchant account"),
        BotCommand(command="stop", description="Stop notifications"),
    ]
    assert await bot.set_my_commands(commands)
    assert [(c.command, c.description) for c in await bot.get_my_commands()] == [
        ("start", "Link this chat to your merchant account"),
        ("stop", "Stop notifications"),
    ]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Not Valid", description="x")])
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == []


async def test_button_press_is_an_update_and_its_answer_is_recorded(
    sim: RunningTelegramSim, bot: Bot
) -> None:
    sim.say(TOKEN, CHAT_ID, "/start")
    message = await bot.send_message(CHAT_ID, "Your invoice", reply_markup=PAY_BUTTON)
    sim.press(TOKEN, CHAT_ID, message.message_id, "invoice:42")
    updates = await bot.get_updates(offset=0, timeout=0)
    query = updates[-1].callback_query
    assert query is not None and query.data == "invoice:42"
    assert query.message is not None and query.message.message_id == message.message_id
    assert await bot.answer_callback_query(query.id, text="Opening…")
    [recorded] = sim.callback_queries(TOKEN)
    assert recorded["answer"]["text"] == "Opening…"


def test_control_api_refuses_bad_input_clearly(sim: RunningTelegramSim) -> None:
    def post(path: str, body: object) -> httpx.Response:
        return httpx.post(sim.url + path, json=body, timeout=5)

    bad_chat = post(f"/sim/bots/{TOKEN}/messages", {"chat_id": "abc", "text": "hi"})
    assert bad_chat.status_code == 400 and bad_chat.json()["field"] == "chat_id"
    too_long = post(f"/sim/bots/{TOKEN}/messages", {"chat_id": 1, "text": "x" * 4097})
    assert too_long.status_code == 400 and too_long.json()["field"] == "text"
    assert post("/sim/bots/1:nobody/messages", {"chat_id": 1, "text": "hi"}).status_code == 404
    bad_token = post("/sim/bots", {"token": "nope", "username": "x_bot"})
    assert bad_token.status_code == 400 and bad_token.json()["field"] == "token"
    bad_name = post("/sim/bots", {"token": "77:abc", "username": "notabotname"})
    assert bad_name.status_code == 400 and bad_name.json()["field"] == "username"
    bad_method = post("/sim/faults", {"token": TOKEN, "method": "sendMesage", "error_code": 500})
    assert bad_method.status_code == 400 and bad_method.json()["field"] == "method"
    assert post("/sim/bots", {"token": "77:abc", "username": "second_bot"}).status_code == 200
    assert sim.bot("77:abc")["username"] == "second_bot"
