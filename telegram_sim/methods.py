"""The Bot API methods the platform's bot uses, with Telegram's checks and answers.

Each method takes the parameters already read (see params.py) and returns the `result` of a
successful call, or raises ApiError with Telegram's own error_code and description. Checks run
in Telegram's order where it matters to a bot: the chat is found first, then the content is
checked, and a user who blocked the bot is reported only when something would be delivered.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientError, ClientTimeout
from yarl import URL

from telegram_sim import params as p
from telegram_sim.errors import (
    ApiError,
    bad_request,
    blocked_by_user,
    chat_not_found,
)
from telegram_sim.images import checked_photo, identify
from telegram_sim.markup import Formatted, check_parse_mode, format_text
from telegram_sim.model import BotAccount, Chat, SentMessage, StoredPhoto, Webhook, now
from telegram_sim.params import Params, Upload
from telegram_sim.simulator import Simulator

log = logging.getLogger("telegram_sim.methods")

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_ANSWER = 200
MAX_COMMANDS = 100
MAX_POLL_TIMEOUT = 50  # seconds; Telegram does not hold a long poll longer
MAX_PHOTO_BYTES = 10 * 1024**2  # "The photo must be at most 10 MB in size."
MAX_PHOTO_URL_BYTES = 5 * 1024**2  # "5 MB max size for photos" sent by URL
PHOTO_URL_TIMEOUT = 10.0
MAX_CALLBACK_DATA_BYTES = 64
COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
LANGUAGE_RE = re.compile(r"[a-z]{2}")
SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
COMMAND_SCOPES = frozenset(
    {
        "default", "all_private_chats", "all_group_chats", "all_chat_administrators",
        "chat", "chat_administrators", "chat_member",
    }
)  # fmt: skip
BUTTON_ACTIONS = frozenset(
    {
        "url", "callback_data", "web_app", "login_url", "switch_inline_query",
        "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
        "callback_game", "pay",
    }
)  # fmt: skip
MARKUP_PROBLEM = "can't parse reply keyboard markup JSON object"


@dataclass(frozen=True, slots=True)
class Call:
    sim: Simulator
    bot: BotAccount
    params: Params


@dataclass(frozen=True, slots=True)
class Described:
    """A result Telegram sends with a `description` beside it (setWebhook, deleteWebhook)."""

    result: Any
    description: str


Method = Callable[[Call], Awaitable[Any]]


# ----- the bot itself


async def get_me(call: Call) -> Any:
    return call.bot.user_json()


async def set_my_commands(call: Call) -> Any:
    commands = p.json_value(call.params, "commands", "can't parse commands JSON object")
    if not isinstance(commands, list):
        raise bad_request("can't parse commands JSON object")
    if len(commands) > MAX_COMMANDS:
        raise bad_request("BOT_COMMANDS_TOO_MUCH")
    cleaned = []
    for command in commands:
        if not isinstance(command, dict):
            raise bad_request("can't parse commands JSON object")
        name, description = command.get("command"), command.get("description")
        if not isinstance(name, str) or COMMAND_RE.fullmatch(name.lstrip("/")) is None:
            raise bad_request("BOT_COMMAND_INVALID")
        if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        cleaned.append({"command": name.lstrip("/"), "description": description.strip()})
    key = _command_scope(call.params)
    if cleaned:
        call.bot.commands[key] = cleaned
    else:
        call.bot.commands.pop(key, None)
    return True


async def get_my_commands(call: Call) -> Any:
    return list(call.bot.commands.get(_command_scope(call.params), []))


async def delete_my_commands(call: Call) -> Any:
    call.bot.commands.pop(_command_scope(call.params), None)
    return True


def _command_scope(params: Params) -> tuple[str, str]:
    scope = p.json_value(params, "scope", "can't parse BotCommandScope JSON object")
    if scope is None:
        scope = {"type": "default"}
    if not isinstance(scope, dict) or scope.get("type") not in COMMAND_SCOPES:
        raise bad_request("can't parse BotCommandScope JSON object")
    language = p.text(params, "language_code") or ""
    if language and LANGUAGE_RE.fullmatch(language) is None:
        raise bad_request("invalid language code specified")
    return json.dumps(scope, sort_keys=True), language


# ----- updates: long polling and webhooks


async def get_updates(call: Call) -> Any:
    params, bot = call.params, call.bot
    allowed = p.json_value(params, "allowed_updates", "can't parse allowed updates JSON object")
    if isinstance(allowed, list):
        bot.allowed_updates = [str(kind) for kind in allowed]
    offset = p.integer(params, "offset", 0) or 0
    limit = p.integer(params, "limit", 100) or 100
    timeout = p.integer(params, "timeout", 0) or 0
    # Out-of-range values are clamped, not refused, as Telegram does.
    return await bot.updates.poll(
        offset, min(max(limit, 1), 100), min(max(timeout, 0), MAX_POLL_TIMEOUT)
    )


async def set_webhook(call: Call) -> Any:
    params, bot = call.params, call.bot
    url = (p.text(params, "url") or "").strip()
    drop = p.flag(params, "drop_pending_updates")
    if not url:
        return await delete_webhook(call)
    if not _is_web_url(url):
        # Telegram insists on HTTPS; the stand-in also takes http:// so tests need no TLS.
        raise bad_request("bad webhook: An HTTP or HTTPS URL must be provided for webhook")
    secret = p.text(params, "secret_token")
    if secret is not None and SECRET_TOKEN_RE.fullmatch(secret) is None:
        raise bad_request("bad webhook: secret token contains unallowed characters")
    max_connections = min(max(p.integer(params, "max_connections", 40) or 40, 1), 100)
    allowed = p.json_value(params, "allowed_updates", "can't parse allowed updates JSON object")
    if allowed is not None and not isinstance(allowed, list):
        raise bad_request("can't parse allowed updates JSON object")
    ip_address = p.text(params, "ip_address")
    webhook = Webhook(url, secret, max_connections, ip_address)
    unchanged = bot.webhook is not None and bot.webhook.settings() == webhook.settings()
    if allowed is not None:
        bot.allowed_updates = [str(kind) for kind in allowed]
    if unchanged and not drop:
        return Described(True, "Webhook is already set")
    await call.sim.set_webhook(bot, webhook, drop)
    return Described(True, "Webhook was set")


async def delete_webhook(call: Call) -> Any:
    was_set = call.bot.webhook is not None
    await call.sim.delete_webhook(call.bot, p.flag(call.params, "drop_pending_updates"))
    return Described(True, "Webhook was deleted" if was_set else "Webhook is already deleted")


async def get_webhook_info(call: Call) -> Any:
    return call.bot.webhook_info()


def _is_web_url(url: str) -> bool:
    try:
        parsed = URL(url)
    except ValueError:
        return False
    return parsed.scheme in {"http", "https"} and bool(parsed.host)


# ----- sending


async def send_message(call: Call) -> Any:
    params = call.params
    chat = _chat(call)
    source = p.text(params, "text") or ""
    formatted = _formatted(params, source, "parse_mode", "entities")
    if not formatted.text:
        raise bad_request("message text is empty")
    if len(formatted.text) > MAX_TEXT:
        raise bad_request("message is too long")
    markup = _reply_markup(params)
    preview = p.json_value(
        params, "link_preview_options", "can't parse link preview options JSON object"
    )
    if preview is not None and not isinstance(preview, dict):
        raise bad_request("can't parse link preview options JSON object")
    _deliverable(chat)
    message = _message(call.bot, chat, markup)
    message["text"] = formatted.text
    if formatted.entities:
        message["entities"] = formatted.entities
    _record(chat, "sendMessage", message, source, formatted, params, markup, preview)
    return message


async def send_photo(call: Call) -> Any:
    params = call.params
    chat = _chat(call)
    photo = await _photo(call)
    source = p.text(params, "caption") or ""
    formatted = _formatted(params, source, "parse_mode", "caption_entities")
    if len(formatted.text) > MAX_CAPTION:
        raise bad_request("message caption is too long")
    markup = _reply_markup(params)
    _deliverable(chat)
    call.bot.remember_photo(photo)
    message = _message(call.bot, chat, markup)
    message["photo"] = photo.sizes()
    if formatted.text:
        message["caption"] = formatted.text
    if formatted.entities:
        message["caption_entities"] = formatted.entities
    _record(chat, "sendPhoto", message, source, formatted, params, markup, None, photo)
    return message


async def answer_callback_query(call: Call) -> Any:
    params = call.params
    query_id = p.text(params, "callback_query_id")
    if not query_id:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    answer = p.text(params, "text") or ""
    if len(answer) > MAX_CALLBACK_ANSWER:
        raise bad_request("MESSAGE_TOO_LONG")
    query = call.bot.callback_queries.get(query_id)
    if query is not None:
        query.answer = {
            "text": answer,
            "show_alert": p.flag(params, "show_alert"),
            "url": p.text(params, "url"),
            "cache_time": p.integer(params, "cache_time", 0),
        }
    return True


def _chat(call: Call) -> Chat:
    raw = call.params.get("chat_id")
    if raw is None or raw == "":
        raise bad_request("chat_id is empty")
    try:
        chat_id = int(raw) if not isinstance(raw, bool) else None
    except (TypeError, ValueError):
        chat_id = None  # "@channelusername": there are no channels here
    chat = call.bot.chats.get(chat_id) if chat_id is not None else None
    if chat is None:
        raise chat_not_found()
    return chat


def _deliverable(chat: Chat) -> None:
    if chat.blocked:
        raise blocked_by_user()


def _formatted(params: Params, source: str, mode_name: str, entities_name: str) -> Formatted:
    parse_mode = check_parse_mode(p.text(params, mode_name))
    entities = p.json_value(params, entities_name, "can't parse entities JSON object")
    return format_text(source, parse_mode, entities)


def _message(bot: BotAccount, chat: Chat, markup: dict[str, Any] | None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": chat.take_message_id(),
        "from": bot.sender_json(),
        "chat": chat.user.chat_json(),
        "date": now(),
    }
    if markup is not None and "inline_keyboard" in markup:
        message["reply_markup"] = markup  # only inline keyboards come back on the Message
    return message


def _record(
    chat: Chat,
    method: str,
    message: dict[str, Any],
    source: str,
    formatted: Formatted,
    params: Params,
    markup: Any,
    preview: Any,
    photo: StoredPhoto | None = None,
) -> None:
    chat.sent.append(
        SentMessage(
            method=method,
            message=message,
            raw_text=source,
            formatted=formatted,
            parse_mode=p.text(params, "parse_mode"),
            reply_markup=markup,
            link_preview_options=preview,
            disable_notification=p.flag(params, "disable_notification"),
            photo=photo,
        )
    )


async def _photo(call: Call) -> StoredPhoto:
    value = call.params.get("photo")
    if isinstance(value, str) and value.startswith("attach://"):
        value = call.params.get(value.removeprefix("attach://"))
        if not isinstance(value, Upload):
            raise bad_request("there is no photo in the request")
    if isinstance(value, Upload):
        data = value.data
    elif isinstance(value, str) and value.startswith(("http://", "https://")):
        data = await _download(call.sim, value)
    elif isinstance(value, str) and value.strip():
        known = call.bot.find_photo(value.strip())
        if known is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        return known
    else:
        raise bad_request("there is no photo in the request")
    if len(data) > MAX_PHOTO_BYTES:
        raise bad_request("file is too big")
    return StoredPhoto.create(data, checked_photo(data))


async def _download(sim: Simulator, url: str) -> bytes:
    """Telegram fetches a photo given by URL itself; so does the stand-in."""
    if sim.http is None:
        raise bad_request("failed to get HTTP URL content")
    try:
        async with sim.http.get(url, timeout=ClientTimeout(total=PHOTO_URL_TIMEOUT)) as response:
            if response.status != 200:
                raise bad_request("failed to get HTTP URL content")
            data = await p.read_capped(response.content, MAX_PHOTO_URL_BYTES)
    except (ClientError, TimeoutError):
        raise bad_request("failed to get HTTP URL content") from None
    except ApiError as exc:
        if exc.error_code == 413:
            raise bad_request("failed to get HTTP URL content") from None
        raise
    if identify(data) is None:
        raise bad_request("wrong type of the web page content")
    return data


def _reply_markup(params: Params) -> dict[str, Any] | None:
    markup = p.json_value(params, "reply_markup", MARKUP_PROBLEM)
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request(MARKUP_PROBLEM)
    if "inline_keyboard" in markup:
        _check_inline_keyboard(markup["inline_keyboard"])
    elif "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request("can't parse keyboard JSON object")
    elif not ({"remove_keyboard", "force_reply"} & markup.keys()):
        raise bad_request(MARKUP_PROBLEM)
    return markup


def _check_inline_keyboard(rows: Any) -> None:
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request("can't parse inline keyboard JSON object")
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise bad_request(
                    'can\'t parse inline keyboard button: Field "text" must be of type String'
                )
            if not BUTTON_ACTIONS & button.keys():
                raise bad_request(
                    "can't parse inline keyboard button: "
                    "Text buttons are unallowed in the inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and (
                not isinstance(data, str)
                or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES
            ):
                raise bad_request("BUTTON_DATA_INVALID")
            url = button.get("url")
            if url is not None and not (
                isinstance(url, str) and (_is_web_url(url) or url.startswith("tg://"))
            ):
                raise bad_request(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")


# ----- the method table

METHODS: dict[str, Method] = {
    name.lower(): method
    for name, method in (
        ("getMe", get_me),
        ("getUpdates", get_updates),
        ("setWebhook", set_webhook),
        ("deleteWebhook", delete_webhook),
        ("getWebhookInfo", get_webhook_info),
        ("sendMessage", send_message),
        ("sendPhoto", send_photo),
        ("setMyCommands", set_my_commands),
        ("getMyCommands", get_my_commands),
        ("deleteMyCommands", delete_my_commands),
        ("answerCallbackQuery", answer_callback_query),
    )
}
# A photo upload may be large; every other method's request is small.
LARGE_REQUEST_METHODS = frozenset({"sendphoto"})
# A webhook's answer may only call methods whose result nobody reads.
NOT_FROM_WEBHOOK = frozenset({"getupdates", "getme", "getwebhookinfo", "getmycommands"})


async def run_webhook_reply(sim: Simulator, bot: BotAccount, params: Params) -> None:
    """Run the method a webhook answered with; Telegram ignores its result and its errors."""
    name = str(params.pop("method", "")).lower()
    method = METHODS.get(name)
    if method is None or name in NOT_FROM_WEBHOOK:
        log.info("webhook of @%s answered with method %r: ignored", bot.username, name)
        return
    try:
        await method(Call(sim, bot, params))
    except ApiError as exc:
        log.info("webhook of @%s: its reply %s failed: %s", bot.username, name, exc.description)
