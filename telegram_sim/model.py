"""What the stand-in remembers about each bot: its chats, what it sent, its files and settings.

Everything is in memory and rendered as the Bot API's own objects (User, Chat, Message,
PhotoSize, WebhookInfo), so what a handler returns is what api.telegram.org would return.
Only private chats exist: the platform's bot talks to merchant users one to one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from telegram_sim.images import ImageInfo
from telegram_sim.markup import Formatted
from telegram_sim.updates import UpdateQueue

# Bounds on memory, not Telegram rules: old entries go first.
MAX_SENT_PER_CHAT = 10_000
MAX_PHOTOS_PER_BOT = 10_000
MAX_CALLBACK_QUERIES = 10_000
# Telegram's thumbnail boxes (s, m, x, y, w): a photo comes back in every box smaller than it.
PHOTO_BOXES = (90, 320, 800, 1280, 2560)


def now() -> int:
    return int(time.time())


def new_file_ids() -> tuple[str, str]:
    """An opaque file_id and its shorter file_unique_id, shaped like Telegram's."""
    return "AgAC" + secrets.token_urlsafe(48), "AQAD" + secrets.token_urlsafe(9)


@dataclass(slots=True)
class PrivateUser:
    """The person at the other end of a private chat; the chat's id is the user's id."""

    id: int
    first_name: str
    username: str | None = None
    language_code: str = "en"

    def user_json(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.username:
            user["username"] = self.username
        user["language_code"] = self.language_code
        return user

    def chat_json(self) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": self.id, "first_name": self.first_name}
        if self.username:
            chat["username"] = self.username
        chat["type"] = "private"
        return chat


@dataclass(frozen=True, slots=True)
class StoredPhoto:
    """A photo the bot uploaded; its file_id can be sent again by this bot."""

    file_id: str
    file_unique_id: str
    data: bytes
    info: ImageInfo
    sha256: str

    @classmethod
    def create(cls, data: bytes, info: ImageInfo) -> StoredPhoto:
        file_id, unique_id = new_file_ids()
        return cls(file_id, unique_id, data, info, hashlib.sha256(data).hexdigest())

    def sizes(self) -> list[dict[str, Any]]:
        """PhotoSize, smallest first, the last one the photo itself (within 2560 px).

        Telegram re-encodes every size; the thumbnails' file_size here is an estimate scaled by
        area, the largest one's is the upload's size.
        """
        width, height = self.info.width, self.info.height
        longest = max(width, height)
        boxes = [box for box in PHOTO_BOXES if box < longest] + [min(longest, PHOTO_BOXES[-1])]
        sizes = []
        for index, box in enumerate(boxes):
            scale = box / longest
            w, h = max(1, round(width * scale)), max(1, round(height * scale))
            last = index == len(boxes) - 1
            size = len(self.data) if last else max(1, round(len(self.data) * scale * scale))
            suffix = "" if last else f"_{index}"
            sizes.append(
                {
                    "file_id": self.file_id + suffix,
                    "file_unique_id": self.file_unique_id + suffix,
                    "file_size": size,
                    "width": w,
                    "height": h,
                }
            )
        return sizes

    def sim_json(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "sha256": self.sha256,
            "content_type": self.info.content_type,
            "size": len(self.data),
            "width": self.info.width,
            "height": self.info.height,
            "base64": base64.b64encode(self.data).decode("ascii"),
        }


@dataclass(slots=True, kw_only=True)
class SentMessage:
    """A message the bot sent, with what the user sees and what the bot asked for."""

    method: str
    message: dict[str, Any]  # the Message object returned to the bot
    raw_text: str
    formatted: Formatted
    parse_mode: str | None
    reply_markup: Any
    link_preview_options: Any
    disable_notification: bool
    photo: StoredPhoto | None = None

    @property
    def message_id(self) -> int:
        return int(self.message["message_id"])

    def sim_json(self) -> dict[str, Any]:
        body_key = "caption" if self.photo is not None else "text"
        out: dict[str, Any] = {
            "message_id": self.message_id,
            "method": self.method,
            "date": self.message["date"],
            body_key: self.formatted.text,
            f"raw_{body_key}": self.raw_text,
            "entities": self.formatted.entities,
            "parse_mode": self.parse_mode,
            "reply_markup": self.reply_markup,
            "link_preview_options": self.link_preview_options,
            "disable_notification": self.disable_notification,
        }
        if self.photo is not None:
            out["photo"] = self.photo.sim_json()
        return out


@dataclass(slots=True)
class Chat:
    user: PrivateUser
    blocked: bool = False
    last_message_id: int = 0
    sent: deque[SentMessage] = field(default_factory=lambda: deque(maxlen=MAX_SENT_PER_CHAT))

    def take_message_id(self) -> int:
        """Both sides of a private chat draw message ids from one sequence."""
        self.last_message_id += 1
        return self.last_message_id

    def find_sent(self, message_id: int) -> SentMessage | None:
        return next((m for m in self.sent if m.message_id == message_id), None)


@dataclass(slots=True)
class Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    ip_address: str | None
    last_error_date: int | None = None
    last_error_message: str | None = None

    def settings(self) -> tuple[str, str | None, int, str | None]:
        return (self.url, self.secret_token, self.max_connections, self.ip_address)


@dataclass(slots=True)
class Fault:
    """The next `remaining` calls of a method fail with this error (POST /sim/faults)."""

    error_code: int
    description: str
    retry_after: int | None
    remaining: int


@dataclass(slots=True)
class CallbackQuery:
    id: str
    chat_id: int
    message_id: int
    data: str
    answer: dict[str, Any] | None = None


class BotAccount:
    """One bot token: what getMe says, and everything its chats and settings hold."""

    def __init__(
        self, token: str, username: str, first_name: str, *, first_update_id: int = 1
    ) -> None:
        self.token = token
        self.id = int(token.split(":", 1)[0])
        self.username = username
        self.first_name = first_name
        self.updates = UpdateQueue(first_update_id)
        self.chats: dict[int, Chat] = {}
        self.photos: dict[str, StoredPhoto] = {}
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.webhook: Webhook | None = None
        self.allowed_updates: list[str] | None = None
        self.faults: dict[str, deque[Fault]] = {}
        self.callback_queries: dict[str, CallbackQuery] = {}

    def user_json(self) -> dict[str, Any]:
        """getMe's User."""
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def sender_json(self) -> dict[str, Any]:
        """The bot as `from` of the messages it sends."""
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }

    def remember_photo(self, photo: StoredPhoto) -> None:
        self.photos[photo.file_id] = photo
        while len(self.photos) > MAX_PHOTOS_PER_BOT:
            del self.photos[next(iter(self.photos))]

    def find_photo(self, file_id: str) -> StoredPhoto | None:
        """A photo by the file_id of any of its sizes (thumbnails carry a `_n` suffix)."""
        if file_id in self.photos:
            return self.photos[file_id]
        base, _, size = file_id.rpartition("_")
        return self.photos.get(base) if size.isdigit() else None

    def remember_callback(self, query: CallbackQuery) -> None:
        self.callback_queries[query.id] = query
        while len(self.callback_queries) > MAX_CALLBACK_QUERIES:
            del self.callback_queries[next(iter(self.callback_queries))]

    def take_fault(self, method: str) -> Fault | None:
        """The fault planned for this call of `method` (lower case), if any; counts it down."""
        for key in (method, "*"):
            planned = self.faults.get(key)
            if planned:
                fault = planned[0]
                fault.remaining -= 1
                if fault.remaining <= 0:
                    planned.popleft()
                return fault
        return None

    def webhook_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook.url if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),
        }
        if self.webhook is not None:
            if self.webhook.ip_address:
                info["ip_address"] = self.webhook.ip_address
            if self.webhook.last_error_date is not None:
                info["last_error_date"] = self.webhook.last_error_date
                info["last_error_message"] = self.webhook.last_error_message
            info["max_connections"] = self.webhook.max_connections
            if self.allowed_updates:
                info["allowed_updates"] = self.allowed_updates
        return info

    def summary(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "id": self.id,
            "username": self.username,
            "first_name": self.first_name,
            "pending_updates": len(self.updates),
            "next_update_id": self.updates.next_update_id,
            "webhook": self.webhook_info() if self.webhook else None,
            "allowed_updates": self.allowed_updates,
            "chats": sorted(self.chats),
            "commands": [
                {"scope": json.loads(scope), "language_code": language, "commands": commands}
                for (scope, language), commands in self.commands.items()
            ],
            "faults": {
                method: [
                    {"error_code": f.error_code, "description": f.description, "times": f.remaining}
                    for f in planned
                ]
                for method, planned in self.faults.items()
                if planned
            },
        }
