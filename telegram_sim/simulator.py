"""The stand-in's state and the user's side of the conversation, shared by both HTTP APIs.

The Bot API handlers act for the bot; the /sim/ handlers act for the user (typing, pressing
a button, blocking) and for the test (faults, reset). Both go through this one object so the
bot and the user always see the same chats, updates and webhooks.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientSession

from telegram_sim.errors import BadControlRequest, UnknownResource, not_found, unauthorized
from telegram_sim.model import BotAccount, CallbackQuery, Chat, PrivateUser, Webhook, now
from telegram_sim.webhooks import DeliveryPolicy, ReplyHandler, WebhookDeliverer

# A token is "<bot id>:<secret>"; aiogram checks the same shape before it sends anything.
TOKEN_RE = re.compile(r"[0-9]{1,19}:[A-Za-z0-9_-]{1,128}")
# Telegram: 5-32 characters, letters, digits and underscores, ending in "bot".
BOT_USERNAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{1,28}[Bb][Oo][Tt]")
# A command as Telegram marks it: "/name" or "/name@bot_username" at the start of the text.
COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_@])")
MAX_BOTS = 1_000


@dataclass(frozen=True, slots=True, kw_only=True)
class SimSettings:
    bots: tuple[tuple[str, str], ...] = ()  # (token, username) given on the command line
    webhook_retry_delay: float = 1.0
    webhook_max_retry_delay: float = 60.0
    webhook_timeout: float = 10.0


def token_problem(token: object) -> str | None:
    if not isinstance(token, str) or TOKEN_RE.fullmatch(token) is None:
        return "must look like 123456:ABC-DEF (the bot id, a colon, letters, digits, _ or -)"
    return None


def username_problem(username: object) -> str | None:
    if not isinstance(username, str) or BOT_USERNAME_RE.fullmatch(username) is None:
        return "must be 5-32 letters, digits or underscores, start with a letter, end in 'bot'"
    return None


def command_entities(text: str) -> list[dict[str, Any]]:
    """The bot_command entity Telegram adds to a message that starts with a command."""
    match = COMMAND_RE.match(text)
    if match is None:
        return []
    return [{"offset": 0, "length": len(match.group()), "type": "bot_command"}]


class Simulator:
    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.policy = DeliveryPolicy(
            retry_delay=settings.webhook_retry_delay,
            max_retry_delay=settings.webhook_max_retry_delay,
            timeout=settings.webhook_timeout,
        )
        self.bots: dict[str, BotAccount] = {}
        self.http: ClientSession | None = None  # opened by the app's lifecycle
        # Runs a method a webhook answered with; set by the app (the methods live above this).
        self.reply_handler: ReplyHandler | None = None
        self._deliverers: dict[str, WebhookDeliverer] = {}
        for token, username in settings.bots:
            self.add_bot(token, username)

    # ----- bots

    def add_bot(self, token: str, username: str, first_name: str | None = None) -> BotAccount:
        """Register a bot; registering the same token and username again is a no-op."""
        existing = self.bots.get(token)
        if existing is not None:
            if existing.username != username:
                raise BadControlRequest("token", f"is already the token of @{existing.username}")
            return existing
        if len(self.bots) >= MAX_BOTS:
            raise BadControlRequest("token", f"the stand-in holds at most {MAX_BOTS} bots")
        bot = BotAccount(token, username, first_name or username)
        self.bots[token] = bot
        return bot

    def authenticate(self, token: str) -> BotAccount:
        """The bot behind a Bot API URL: 404 for a malformed token, 401 for an unknown one."""
        if TOKEN_RE.fullmatch(token) is None:
            raise not_found()
        bot = self.bots.get(token)
        if bot is None:
            raise unauthorized()
        return bot

    def bot(self, token: str) -> BotAccount:
        bot = self.bots.get(token)
        if bot is None:
            raise UnknownResource("token", "no bot has this token (POST /sim/bots adds one)")
        return bot

    # ----- the user's side

    def user_says(
        self, bot: BotAccount, chat_id: int, text: str, first_name: str | None, username: str | None
    ) -> dict[str, Any]:
        """A user types `text` to the bot; the update is queued (or sent to the webhook)."""
        chat = self._chat_for(bot, chat_id, first_name, username)
        # A user who blocked the bot has to unblock it to write to it.
        chat.blocked = False
        message: dict[str, Any] = {
            "message_id": chat.take_message_id(),
            "from": chat.user.user_json(),
            "chat": chat.user.chat_json(),
            "date": now(),
            "text": text,
        }
        if entities := command_entities(text):
            message["entities"] = entities
        return bot.updates.push("message", message)

    def user_presses(
        self, bot: BotAccount, chat_id: int, message_id: int, data: str
    ) -> dict[str, Any]:
        """A user presses an inline button with callback_data `data` under a bot's message."""
        chat = self.chat(bot, chat_id)
        sent = chat.find_sent(message_id)
        if sent is None:
            raise UnknownResource("message_id", "the bot sent no such message to this chat")
        query = CallbackQuery(str(secrets.randbits(63)), chat_id, message_id, data)
        bot.remember_callback(query)
        return bot.updates.push(
            "callback_query",
            {
                "id": query.id,
                "from": chat.user.user_json(),
                "message": sent.message,
                "chat_instance": str(abs(hash((bot.id, chat_id)))),
                "data": data,
            },
        )

    def chat(self, bot: BotAccount, chat_id: int) -> Chat:
        chat = bot.chats.get(chat_id)
        if chat is None:
            raise UnknownResource("chat_id", "this user has never written to the bot")
        return chat

    def _chat_for(
        self, bot: BotAccount, chat_id: int, first_name: str | None, username: str | None
    ) -> Chat:
        chat = bot.chats.get(chat_id)
        if chat is None:
            chat = Chat(PrivateUser(chat_id, first_name or f"User {chat_id}", username))
            bot.chats[chat_id] = chat
            return chat
        if first_name:
            chat.user.first_name = first_name
        if username:
            chat.user.username = username
        return chat

    # ----- webhooks

    async def set_webhook(self, bot: BotAccount, webhook: Webhook, drop_pending: bool) -> None:
        if self.http is None or self.reply_handler is None:
            raise RuntimeError("the simulator's HTTP client is not open: is the app running?")
        await self._stop_deliverer(bot)
        if drop_pending:
            bot.updates.drop_all()
        bot.webhook = webhook
        bot.updates.webhook_active = True
        bot.updates.notify()  # a getUpdates still waiting ends with the webhook conflict
        deliverer = WebhookDeliverer(bot, webhook, self.http, self.policy, self.reply_handler)
        self._deliverers[bot.token] = deliverer
        deliverer.start()

    async def delete_webhook(self, bot: BotAccount, drop_pending: bool) -> None:
        await self._stop_deliverer(bot)
        if drop_pending:
            bot.updates.drop_all()
        bot.webhook = None
        bot.updates.webhook_active = False

    async def _stop_deliverer(self, bot: BotAccount) -> None:
        deliverer = self._deliverers.pop(bot.token, None)
        if deliverer is not None:
            await deliverer.stop()

    # ----- the test's side

    async def reset(self) -> None:
        """Back to how it started: only the command line's bots, and nothing in them.

        Chats, updates, webhooks, commands and faults are gone. Update ids carry on from where
        they were, as Telegram's do, so a bot process that keeps polling across the reset does
        not confirm the new updates with its old offset.
        """
        next_ids = {token: bot.updates.next_update_id for token, bot in self.bots.items()}
        await self.close()
        self.bots = {}
        for token, username in self.settings.bots:
            self.bots[token] = BotAccount(
                token, username, username, first_update_id=next_ids.get(token, 1)
            )

    async def close(self) -> None:
        """Stop every webhook delivery and release every waiting getUpdates (with [])."""
        for token in list(self._deliverers):
            await self._stop_deliverer(self.bots[token])
        for bot in self.bots.values():
            bot.updates.close()

    def status(self) -> dict[str, Any]:
        return {
            "bots": [bot.summary() for bot in self.bots.values()],
            "webhook_retry_delay": self.settings.webhook_retry_delay,
            "webhook_max_retry_delay": self.settings.webhook_max_retry_delay,
            "webhook_timeout": self.settings.webhook_timeout,
        }
