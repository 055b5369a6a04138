"""The bot's Bot API client, its pushes to chats, and long polling for updates."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import LinkPreviewOptions, Update

from app.services.errors import DependencyUnavailable, NoticeRejected

logger = logging.getLogger(__name__)

# Long polling: an idle bot costs one request per this many seconds, and an update arrives as
# soon as it is sent. Kept shorter than Telegram's usual advice (25–50 s) as the poll runs in a
# leader's timer, which a worker's shutdown waits for.
POLL_TIMEOUT = 10
REQUEST_TIMEOUT = 15.0


def telegram_bot(token: str, api_url: str) -> Bot:
    """A bot on the Bot API at ``api_url`` (``https://api.telegram.org`` or a stand-in)."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_url.rstrip("/")))
    session.timeout = REQUEST_TIMEOUT
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))


class BotPushes:
    """``TelegramSender``: a notice to a linked chat."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def send_text(self, chat_id: int, html: str) -> str:
        try:
            message = await self._bot.send_message(
                chat_id,
                html,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        except (TelegramForbiddenError, TelegramBadRequest, TelegramNotFound) as exc:
            # Blocked by the user, chat gone, text refused: sending it again cannot help.
            raise NoticeRejected(f"Telegram refused the message to chat {chat_id}: {exc}") from exc
        except TelegramRetryAfter as exc:
            raise DependencyUnavailable(
                f"Telegram asks to wait {exc.retry_after} s before writing again"
            ) from exc
        except TelegramUnauthorizedError as exc:
            # Our token is wrong: an operator's fix away, so the notice waits for it.
            raise DependencyUnavailable(f"the bot's token was refused: {exc}") from exc
        except (TelegramAPIError, TelegramNetworkError, OSError, TimeoutError) as exc:
            raise DependencyUnavailable(f"the Bot API did not take the message: {exc}") from exc
        return str(message.message_id)


UpdateHandler = Callable[[Update], Awaitable[None]]


class LongPolling:
    """``getUpdates`` in a loop, each update handed to ``handle`` in order, confirmed after.

    One poller per bot: Telegram ends a second concurrent ``getUpdates`` with a conflict, so the
    platform polls from the Faust leader only (agents/notices.py); while leadership moves, the
    conflict is waited out rather than treated as a failure.
    """

    def __init__(self, bot: Bot, handle: UpdateHandler, *, timeout: int = POLL_TIMEOUT) -> None:
        self._bot = bot
        self._handle = handle
        self._timeout = timeout
        self._offset: int | None = None
        self._webhook_cleared = False

    async def poll_once(self) -> int:
        """One ``getUpdates`` (up to ``timeout`` seconds); returns how many updates it handled."""
        if not self._webhook_cleared:
            # A webhook left set makes getUpdates fail: polling mode owns the bot.
            await self._bot.delete_webhook(drop_pending_updates=False)
            self._webhook_cleared = True
        try:
            updates = await self._bot.get_updates(
                offset=self._offset,
                timeout=self._timeout,
                request_timeout=self._timeout + int(REQUEST_TIMEOUT),
            )
        except TelegramConflictError as exc:
            logger.info("Telegram getUpdates conflict (another poller): %s", exc)
            self._webhook_cleared = False
            await asyncio.sleep(1.0)
            return 0
        except TelegramRetryAfter as exc:
            await asyncio.sleep(min(float(exc.retry_after), 60.0))
            return 0
        except (TelegramAPIError, TelegramNetworkError, OSError, TimeoutError) as exc:
            logger.warning("Telegram getUpdates failed: %s", exc)
            await asyncio.sleep(2.0)
            return 0
        for update in updates:
            try:
                await self._handle(update)
            except Exception:  # one bad update must not stop the bot; never a payment path
                logger.exception("Telegram update %s could not be handled", update.update_id)
            self._offset = update.update_id + 1
        return len(updates)
