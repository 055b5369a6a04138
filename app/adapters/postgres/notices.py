"""Notices to merchant users, and their Telegram chats, in PostgreSQL (migrations/0026_notices.sql).

``notice_deliveries`` is the notices' queue: the intake agent writes each notice once (its id is
uuid5 of event, user and channel), each worker's dispatcher leases the due ones and records what
became of them. Where a notice goes — a verified email address, a linked chat, an SMS number — is
read when it is claimed, not when it was queued: a chat unlinked in between gets nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from app.adapters.postgres.pool import Connections, SqlStore
from app.domain.access import Role
from app.domain.notifications import (
    DEFAULT_PREFERENCES,
    Channel,
    Notice,
    NoticeFacts,
    NoticeMessage,
    NotificationPreferences,
    Recipient,
    parse_notices,
)
from app.services.ports import ChatUser, ClaimedNotice


def token_digest(token: str) -> str:
    """What is kept of a one-time link token: its SHA-256 (the token itself is only shown once)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _preferences(row: Sequence[Any]) -> NotificationPreferences:
    email, telegram, sms, number = row
    if email is None:  # no row: the user never chose
        return DEFAULT_PREFERENCES
    return NotificationPreferences(
        {
            Channel.EMAIL: parse_notices(email, Channel.EMAIL),
            Channel.TELEGRAM: parse_notices(telegram, Channel.TELEGRAM),
            Channel.SMS: parse_notices(sms, Channel.SMS),
        },
        number,
    )


class PostgresNotices(SqlStore):
    def __init__(self, pool: Connections, origin: str) -> None:
        super().__init__(pool)
        self._origin = origin  # this platform's app id: its dispatchers send only its notices

    # --- who is told --------------------------------------------------------------------------

    async def recipients(self, merchant_id: str) -> list[Recipient]:
        """The merchant's enabled users, with their preferences and where they can be reached."""
        rows = await self._fetchall(
            "SELECT u.user_id, CASE WHEN u.email_verified_at IS NOT NULL THEN u.email END,"
            " p.email_notices, p.telegram_notices, p.sms_notices, p.sms_number, t.chat_id"
            " FROM users u"
            " LEFT JOIN notification_preferences p ON p.user_id = u.user_id"
            " LEFT JOIN telegram_chats t ON t.user_id = u.user_id"
            " WHERE u.merchant_id = %s AND u.disabled_at IS NULL ORDER BY u.user_id",
            (merchant_id,),
        )
        return [
            Recipient(
                user_id=row[0],
                merchant_id=merchant_id,
                email=row[1],
                preferences=_preferences(row[2:6]),
                telegram_chat_id=row[6],
            )
            for row in rows
        ]

    async def merchants_wanting(self, notice: Notice) -> list[str]:
        """Merchants with an enabled user who chose ``notice`` on some channel: the defaults
        never include the daily summary, so only users with a row of their own can want it."""
        rows = await self._fetchall(
            "SELECT DISTINCT u.merchant_id FROM users u"
            " JOIN notification_preferences p ON p.user_id = u.user_id"
            " WHERE u.disabled_at IS NULL AND u.merchant_id IS NOT NULL"
            "   AND %s = ANY(p.email_notices || p.telegram_notices || p.sms_notices)"
            " ORDER BY u.merchant_id",
            (str(notice),),
        )
        return [row[0] for row in rows]

    # --- the queue ----------------------------------------------------------------------------

    async def enqueue(self, messages: Sequence[NoticeMessage]) -> list[str]:
        """Queue each notice once; returns the ids of those that were new."""
        if not messages:
            return []
        rows = await self._fetchall(
            "INSERT INTO notice_deliveries (origin, notice_id, channel, notice, user_id,"
            " merchant_id, subject_id, source_id, occurred_at, facts, traceparent)"
            " SELECT %s, * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[],"
            " %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::jsonb[], %s::text[])"
            " ON CONFLICT (notice_id) DO NOTHING RETURNING notice_id::text",
            (
                self._origin,
                [m.notice_id for m in messages],
                [str(m.channel) for m in messages],
                [str(m.about.notice) for m in messages],
                [m.user_id for m in messages],
                [m.about.merchant_id for m in messages],
                [m.about.subject_id for m in messages],
                [m.about.source_id for m in messages],
                [m.about.occurred_at for m in messages],
                [orjson.dumps(dict(m.about.facts)).decode() for m in messages],
                [m.traceparent for m in messages],
            ),
        )
        return [row[0] for row in rows]

    async def claim_due(self, limit: int, lease_seconds: float) -> list[ClaimedNotice]:
        """Lease up to ``limit`` due notices to this worker, oldest due first."""
        rows = await self._fetchall(
            "WITH due AS ("
            "  SELECT notice_id FROM notice_deliveries"
            "  WHERE origin = %s AND status = 'pending' AND next_attempt_at <= now()"
            "    AND (claimed_until IS NULL OR claimed_until < now())"
            "  ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED)"
            " UPDATE notice_deliveries d SET attempts = d.attempts + 1,"
            "   claimed_until = now() + make_interval(secs => %s)"
            " FROM due WHERE d.notice_id = due.notice_id"
            " RETURNING d.notice_id::text, d.channel, d.notice, d.user_id, d.merchant_id,"
            "   d.subject_id, d.source_id, d.occurred_at, d.facts, d.traceparent, d.attempts,"
            "   (SELECT CASE d.channel"
            "      WHEN 'email' THEN (SELECT u.email FROM users u WHERE u.user_id = d.user_id"
            "        AND u.disabled_at IS NULL AND u.email_verified_at IS NOT NULL)"
            "      WHEN 'telegram' THEN (SELECT t.chat_id::text FROM telegram_chats t"
            "        JOIN users u ON u.user_id = t.user_id"
            "        WHERE t.user_id = d.user_id AND u.disabled_at IS NULL)"
            "      ELSE (SELECT p.sms_number FROM notification_preferences p"
            "        JOIN users u ON u.user_id = p.user_id"
            "        WHERE p.user_id = d.user_id AND u.disabled_at IS NULL) END),"
            "   (SELECT m.name FROM merchants m WHERE m.merchant_id = d.merchant_id)",
            (self._origin, limit, lease_seconds),
        )
        claimed = []
        for row in rows:
            about = NoticeFacts(
                notice=Notice(row[2]),
                subject_id=row[5],
                source_id=row[6],
                merchant_id=row[4],
                occurred_at=row[7],
                facts=row[8],
            )
            message = NoticeMessage(row[0], Channel(row[1]), row[3], about, row[9])
            claimed.append(ClaimedNotice(message, row[10], row[11], row[12] or row[4]))
        return claimed

    async def finish(
        self,
        notice_id: str,
        status: str,
        *,
        sent_to: str | None = None,
        provider_id: str | None = None,
        error: str | None = None,
    ) -> None:
        """The notice's end: ``sent``, ``rejected`` (refused for good), ``failed`` (every
        attempt) or ``skipped`` (nowhere to send it any more)."""
        await self._execute(
            "UPDATE notice_deliveries SET status = %s, sent_to = %s, provider_id = %s,"
            " last_error = %s, claimed_until = NULL, finished_at = now() WHERE notice_id = %s",
            (status, sent_to, provider_id, error, notice_id),
        )

    async def retry_later(self, notice_id: str, delay_seconds: float, error: str) -> None:
        await self._execute(
            "UPDATE notice_deliveries SET last_error = %s, claimed_until = NULL,"
            " next_attempt_at = now() + make_interval(secs => %s) WHERE notice_id = %s",
            (error, delay_seconds, notice_id),
        )

    async def deliveries(self, user_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The user's latest notices and what became of them (newest first)."""
        rows = await self._fetchall(
            "SELECT notice_id::text, channel, notice, subject_id, status, attempts, last_error,"
            " created_at, finished_at FROM notice_deliveries WHERE user_id = %s"
            " ORDER BY created_at DESC LIMIT %s",
            (user_id, limit),
        )
        names = (
            "notice_id",
            "channel",
            "notice",
            "subject_id",
            "status",
            "attempts",
            "last_error",
            "created_at",
            "finished_at",
        )
        return [dict(zip(names, row, strict=True)) for row in rows]

    async def retry_failed(
        self,
        *,
        since: datetime,
        until: datetime | None,
        channel: str | None,
        limit: int,
        dry_run: bool,
    ) -> list[dict[str, Any]]:
        """Failed notices of this platform created in [since, until), queued again from their
        first attempt (an operator's ``checkout notices retry`` once the channel works again)."""
        where = (
            " WHERE origin = %s AND status = 'failed' AND created_at >= %s"
            " AND (%s::timestamptz IS NULL OR created_at < %s)"
            " AND (%s::text IS NULL OR channel = %s)"
        )
        values = (self._origin, since, until, until, channel, channel)
        columns = "notice_id::text, channel, notice, user_id, subject_id, last_error"
        if dry_run:
            sql = f"SELECT {columns} FROM notice_deliveries{where} ORDER BY created_at LIMIT %s"  # noqa: S608 - constants
        else:
            sql = (
                "UPDATE notice_deliveries SET status = 'pending', attempts = 0,"  # noqa: S608 - constants
                " next_attempt_at = now(), finished_at = NULL, claimed_until = NULL"
                f" WHERE notice_id IN (SELECT notice_id FROM notice_deliveries{where}"
                " ORDER BY created_at LIMIT %s)"
                f" RETURNING {columns}"
            )
        rows = await self._fetchall(sql, (*values, limit))
        names = ("notice_id", "channel", "notice", "user_id", "subject_id", "last_error")
        return [dict(zip(names, row, strict=True)) for row in rows]

    # --- Telegram chats -----------------------------------------------------------------------

    async def add_link_token(
        self, token: str, user_id: str, merchant_id: str, expires_at: datetime
    ) -> None:
        """A new one-time link token; the user's earlier unused ones stop working."""
        async with self._transaction() as cursor:
            await cursor.execute(
                "UPDATE telegram_link_tokens SET used_at = now()"
                " WHERE user_id = %s AND used_at IS NULL",
                (user_id,),
            )
            await cursor.execute(
                "INSERT INTO telegram_link_tokens (token_hash, user_id, merchant_id, expires_at)"
                " VALUES (%s, %s, %s, %s)",
                (token_digest(token), user_id, merchant_id, expires_at),
            )

    async def redeem_link_token(
        self, token: str, chat_id: int, username: str | None
    ) -> ChatUser | None:
        """Link the chat to the token's user, once; None when the token is unknown, used or
        expired. A chat linked to someone else before moves to this user."""
        async with self._transaction() as cursor:
            await cursor.execute(
                "UPDATE telegram_link_tokens t SET used_at = now() FROM users u"
                " WHERE t.token_hash = %s AND t.used_at IS NULL AND t.expires_at > now()"
                "   AND u.user_id = t.user_id AND u.disabled_at IS NULL"
                "   AND u.merchant_id = t.merchant_id"
                " RETURNING t.user_id, t.merchant_id, u.role",
                (token_digest(token),),
            )
            row = await cursor.fetchone()
            if row is None:
                return None
            user_id, merchant_id, role = row
            await cursor.execute(
                "DELETE FROM telegram_chats WHERE chat_id = %s AND user_id <> %s",
                (chat_id, user_id),
            )
            await cursor.execute(
                "INSERT INTO telegram_chats (user_id, merchant_id, chat_id, username)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (user_id) DO UPDATE SET"
                " chat_id = EXCLUDED.chat_id, username = EXCLUDED.username, linked_at = now()",
                (user_id, merchant_id, chat_id, username),
            )
        return ChatUser(user_id, merchant_id, Role(role), chat_id)

    async def chat_user(self, chat_id: int) -> ChatUser | None:
        """The enabled merchant user the chat is linked to, if any."""
        row = await self._fetchone(
            "SELECT t.user_id, t.merchant_id, u.role FROM telegram_chats t"
            " JOIN users u ON u.user_id = t.user_id"
            " WHERE t.chat_id = %s AND u.disabled_at IS NULL AND u.merchant_id = t.merchant_id",
            (chat_id,),
        )
        return None if row is None else ChatUser(row[0], row[1], Role(row[2]), chat_id)

    async def telegram_chat(self, user_id: str) -> dict[str, Any] | None:
        row = await self._fetchone(
            "SELECT chat_id, username, linked_at FROM telegram_chats WHERE user_id = %s",
            (user_id,),
        )
        return None if row is None else {"chat_id": row[0], "username": row[1], "linked_at": row[2]}

    async def unlink_chat(self, user_id: str) -> bool:
        rows = await self._fetchall(
            "DELETE FROM telegram_chats WHERE user_id = %s RETURNING chat_id", (user_id,)
        )
        return bool(rows)
