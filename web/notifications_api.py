"""A merchant user's notification preferences (docs/notifications.md):

- ``GET /api/v1/notification-preferences``: the signed-in user's channels and notices (the
  defaults until they change anything);
- ``PATCH /api/v1/notification-preferences``: ``{"email": [...], "telegram": [...], "sms":
  [...], "sms_number": "+4915112345678" | null}``, each key optional: a channel given is
  replaced by the notices listed (``[]`` turns it off), the others stay.

- ``POST /api/v1/notification-preferences/telegram-link``: a one-time link token (30 minutes)
  and the bot's deep link ``https://t.me/<bot>?start=<token>``; opening it links the chat;
- ``GET /api/v1/notification-preferences/telegram``: the linked chat (404 when none);
- ``DELETE /api/v1/notification-preferences/telegram``: unlink it (nothing more is sent there);
- ``GET /api/v1/notification-preferences/deliveries``: the user's last notices and their outcome.

For users only (a session token): an API key is refused with 403
``notification_preferences_need_a_user`` (``telegram_link_needs_a_user`` for the chat).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web as aioweb

from app.domain.notifications import (
    KEEP_NUMBER,
    Channel,
    KeepNumber,
    Notice,
    NotificationPreferences,
    parse_notices,
)
from app.services.notices import TelegramLinks
from app.services.notification_preferences import NotificationPreferencesService
from app.services.ports import NoticeStore
from web.auth import Authenticator
from web.errors import ApiError
from web.input import read_json_object
from web.requests import page_limit

PATH: Final = "/api/v1/notification-preferences"
_FIELDS: Final = {*(channel.value for channel in Channel), "sms_number"}


def _bad(message: str, param: str, code: str = "parameter_invalid") -> ApiError:
    return ApiError(400, code, message, param=param)


class NotificationsApi:
    def __init__(
        self,
        auth: Authenticator,
        preferences: NotificationPreferencesService,
        links: TelegramLinks,
        notices: NoticeStore,
    ) -> None:
        self._auth = auth
        self._preferences = preferences
        self._links = links
        self._notices = notices

    def add_routes(self, router: aioweb.UrlDispatcher) -> None:
        router.add_get(PATH, self.get_preferences)
        router.add_patch(PATH, self.change_preferences)
        router.add_post(f"{PATH}/telegram-link", self.offer_telegram_link)
        router.add_get(f"{PATH}/telegram", self.get_telegram_chat)
        router.add_delete(f"{PATH}/telegram", self.unlink_telegram_chat)
        router.add_get(f"{PATH}/deliveries", self.list_deliveries)

    async def offer_telegram_link(self, request: aioweb.Request) -> aioweb.Response:
        principal = await self._auth.principal(request)
        offer = await self._links.offer(principal, datetime.now(UTC))
        return aioweb.json_response(
            {
                "token": offer.token,
                "deep_link": offer.deep_link,
                "command": f"/start {offer.token}",
                "expires_at": offer.expires_at.isoformat(),
            },
            status=201,
        )

    async def get_telegram_chat(self, request: aioweb.Request) -> aioweb.Response:
        principal = await self._auth.principal(request)
        chat = await self._links.status(principal)
        if chat is None:
            raise ApiError(404, "telegram_not_linked", "no Telegram chat is linked to this user")
        return aioweb.json_response(
            {
                "chat_id": chat["chat_id"],
                "username": chat["username"],
                "linked_at": chat["linked_at"].isoformat(),
            }
        )

    async def unlink_telegram_chat(self, request: aioweb.Request) -> aioweb.Response:
        principal = await self._auth.principal(request)
        await self._links.unlink(principal)
        return aioweb.Response(status=204)

    async def list_deliveries(self, request: aioweb.Request) -> aioweb.Response:
        principal = await self._auth.principal(request)
        await self._preferences.of(principal)  # refuses what is not a merchant's user
        rows = await self._notices.deliveries(principal.actor_id, page_limit(request, 100))
        for row in rows:
            for name in ("created_at", "finished_at"):
                if row[name] is not None:
                    row[name] = row[name].isoformat()
        return aioweb.json_response({"data": rows})

    async def get_preferences(self, request: aioweb.Request) -> aioweb.Response:
        principal = await self._auth.principal(request)
        return aioweb.json_response(preferences_view(await self._preferences.of(principal)))

    async def change_preferences(self, request: aioweb.Request) -> aioweb.Response:
        principal = await self._auth.principal(request)
        body = await read_json_object(request)
        channels, sms_number = parse_changes(body)
        changed = await self._preferences.change(principal, channels, sms_number)
        return aioweb.json_response(preferences_view(changed))


def parse_changes(
    body: dict[str, Any],
) -> tuple[dict[Channel, frozenset[Notice]], str | KeepNumber | None]:
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise _bad(
            f"unknown parameter {unknown[0][:60]!r}; allowed: {', '.join(sorted(_FIELDS))}",
            unknown[0][:60],
            "parameter_unknown",
        )
    if not body:
        raise _bad("name at least one channel or sms_number to change", "email")
    channels: dict[Channel, frozenset[Notice]] = {}
    for channel in Channel:
        if channel.value not in body:
            continue
        names = body[channel.value]
        if (
            not isinstance(names, list)
            or len(names) > len(Notice)
            or not all(isinstance(name, str) for name in names)
        ):
            raise _bad(
                f"{channel.value} must be a list of at most {len(Notice)} notice names",
                channel.value,
            )
        channels[channel] = parse_notices(names, channel.value)
    sms_number: str | KeepNumber | None = KEEP_NUMBER
    if "sms_number" in body:
        sms_number = body["sms_number"]
        if sms_number is not None and (not isinstance(sms_number, str) or len(sms_number) > 16):
            raise _bad(
                "sms_number must be an international number like +4915112345678, or null",
                "sms_number",
            )
    return channels, sms_number


def preferences_view(preferences: NotificationPreferences) -> dict[str, Any]:
    view: dict[str, Any] = {"object": "notification_preferences"}
    for channel in Channel:
        view[channel.value] = sorted(str(n) for n in preferences.channels[channel])
    view["sms_number"] = preferences.sms_number
    view["notices"] = [str(notice) for notice in Notice]  # what may be chosen
    return view
