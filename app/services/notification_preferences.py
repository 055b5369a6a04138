"""A merchant user's notification preferences: read (the defaults until they choose) and changed
(docs/notifications.md).

Preferences belong to a signed-in user of a merchant: an API key is the merchant's machine
credential and has no inbox, and the platform's admins have no merchant to hear about.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from app.domain.access import Principal
from app.domain.errors import Forbidden
from app.domain.notifications import (
    DEFAULT_PREFERENCES,
    KEEP_NUMBER,
    Channel,
    KeepNumber,
    Notice,
    NotificationPreferences,
)
from app.services.ports import NotificationPreferenceStore


class NotAUsersPreferences(Forbidden):
    """Notification preferences asked for by something that is not a merchant's user."""

    code = "notification_preferences_need_a_user"


class NotificationPreferencesService:
    def __init__(self, store: NotificationPreferenceStore) -> None:
        self._store = store

    async def of(self, principal: Principal) -> NotificationPreferences:
        user_id, _ = _user_of(principal)
        return await self._store.get(user_id) or DEFAULT_PREFERENCES

    async def change(
        self,
        principal: Principal,
        channels: Mapping[Channel, Iterable[Notice]],
        sms_number: str | KeepNumber | None = KEEP_NUMBER,
    ) -> NotificationPreferences:
        """Replace the channels named (and the SMS number, when given); the rest stay."""
        user_id, merchant_id = _user_of(principal)
        current = await self._store.get(user_id) or DEFAULT_PREFERENCES
        changed = current.changed(channels, sms_number)
        await self._store.put(user_id, merchant_id, changed)
        return changed


def _user_of(principal: Principal) -> tuple[str, str]:
    if principal.kind != "user" or principal.merchant_id is None:
        raise NotAUsersPreferences(
            "notification preferences belong to a merchant's user: sign in as one "
            "(an API key or a platform admin has none)",
            param="authorization",
        )
    return principal.actor_id, principal.merchant_id
