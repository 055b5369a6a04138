"""Merchant users' notification preferences in PostgreSQL
(migrations/0025_notification_preferences.sql)."""

from __future__ import annotations

from app.adapters.postgres.pool import SqlStore
from app.domain.notifications import Channel, NotificationPreferences, parse_notices


class PostgresNotificationPreferences(SqlStore):
    async def get(self, user_id: str) -> NotificationPreferences | None:
        row = await self._fetchone(
            "SELECT email_notices, telegram_notices, sms_notices, sms_number"
            " FROM notification_preferences WHERE user_id = %s",
            (user_id,),
        )
        if row is None:
            return None
        email, telegram, sms, number = row
        return NotificationPreferences(
            {
                Channel.EMAIL: parse_notices(email, Channel.EMAIL),
                Channel.TELEGRAM: parse_notices(telegram, Channel.TELEGRAM),
                Channel.SMS: parse_notices(sms, Channel.SMS),
            },
            number,
        )

    async def put(
        self, user_id: str, merchant_id: str, preferences: NotificationPreferences
    ) -> None:
        chosen = {channel: sorted(preferences.channels[channel]) for channel in Channel}
        await self._execute(
            "INSERT INTO notification_preferences (user_id, merchant_id, email_notices,"
            " telegram_notices, sms_notices, sms_number) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (user_id) DO UPDATE SET email_notices = EXCLUDED.email_notices,"
            " telegram_notices = EXCLUDED.telegram_notices, sms_notices = EXCLUDED.sms_notices,"
            " sms_number = EXCLUDED.sms_number, updated_at = now()",
            (
                user_id,
                merchant_id,
                [str(n) for n in chosen[Channel.EMAIL]],
                [str(n) for n in chosen[Channel.TELEGRAM]],
                [str(n) for n in chosen[Channel.SMS]],
                preferences.sms_number,
            ),
        )
