"""Notices to merchant users by email, Telegram and SMS (docs/notifications.md).

Three steps, like webhooks, each restartable on its own:

1. ``NoticeFanout``: a domain event that makes notices (app/domain/notifications.py) becomes one
   message per user and channel they chose on ``crypto-checkout.notifications``.
2. ``NoticeIntake``: each message is queued in PostgreSQL once per notice id (uuid5 of event,
   user and channel), so a redelivered message sends nothing twice.
3. ``NoticeDispatch``: each worker leases due notices and sends them; a channel that is down
   (``DependencyUnavailable``) is retried on the channel's schedule, a refusal for good
   (``NoticeRejected``: a blocked bot, an invalid number) is not, and a notice whose attempts
   ran out is handed to ``on_given_up`` (the dead-letter topic).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson
from prometheus_client import Counter

from app.domain.access import Principal
from app.domain.errors import Forbidden, NotFound
from app.domain.events import parse_event
from app.domain.money import format_usdt
from app.domain.notifications import (
    NOTICE_EVENT_TYPES,
    Channel,
    Notice,
    NoticeFacts,
    NoticeMessage,
    Recipient,
    notices_for,
    retry_delay,
)
from app.services.errors import DependencyUnavailable, NoticeRejected
from app.services.notice_messages import (
    MessageContext,
    email_for,
    sms_text_for,
    telegram_text_for,
)
from app.services.ports import (
    AuditEntry,
    AuditLog,
    ChatUser,
    ClaimedNotice,
    Mailer,
    NoticePublisher,
    NoticeStore,
    ReportReads,
    SmsSender,
    TelegramSender,
)

logger = logging.getLogger(__name__)

# A claimed notice's lease outlives the slowest channel's timeout by a margin.
LEASE_SECONDS = 60.0


class NoticeFanout:
    def __init__(
        self, store: NoticeStore, publisher: NoticePublisher, *, sms_enabled: bool
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._sms_enabled = sms_enabled

    async def notices_for(self, raw: bytes) -> list[NoticeMessage]:
        """The messages a domain event makes: one per user and channel that wants each notice."""
        # Most events make none: only their type is read (orjson), not the whole event (pydantic).
        envelope = orjson.loads(raw)
        if isinstance(envelope, dict) and envelope.get("event_type") not in NOTICE_EVENT_TYPES:
            return []
        about = notices_for(parse_event(raw))  # our own contract: an unknown event is an error
        if not about:
            return []
        return await self.addressed(about)

    async def addressed(self, about: Sequence[NoticeFacts]) -> list[NoticeMessage]:
        messages: list[NoticeMessage] = []
        recipients: dict[str, list[Recipient]] = {}
        for facts in about:
            if facts.merchant_id not in recipients:
                recipients[facts.merchant_id] = await self._store.recipients(facts.merchant_id)
            for recipient in recipients[facts.merchant_id]:
                channels = recipient.channels_for(facts.notice, sms_enabled=self._sms_enabled)
                messages += [NoticeMessage.to(recipient.user_id, c, facts) for c in channels]
        return messages

    async def publish(self, messages: Sequence[NoticeMessage]) -> None:
        await self._publisher.publish_notices(messages)


NOTICES_QUEUED = Counter(
    "checkout_notices_queued", "Notices queued for sending, by channel", ["channel"]
)


class NoticeIntake:
    def __init__(self, store: NoticeStore, wake: Callable[[], None]) -> None:
        self._store = store
        self._wake = wake

    async def accept_batch(self, messages: Sequence[NoticeMessage]) -> list[NoticeMessage]:
        """Queue every notice of ``messages`` once; returns those that were new."""
        new = dict.fromkeys(await self._store.enqueue(messages))
        if new:
            self._wake()
        by_id = {m.notice_id: m for m in reversed(messages)}  # the first of an id, as queued
        queued = [by_id[notice_id] for notice_id in new]
        for notice in queued:
            NOTICES_QUEUED.labels(str(notice.channel)).inc()
        return queued


@dataclass(frozen=True)
class Sent:
    sent_to: str
    provider_id: str | None


class NoticeSender:
    """Renders a notice for its channel and hands it to the channel's provider."""

    def __init__(
        self,
        mailer: Mailer,
        telegram: TelegramSender | None,
        sms: SmsSender,
        *,
        public_url: str,
        support_email: str | None = None,
    ) -> None:
        self._mailer = mailer
        self._telegram = telegram
        self._sms = sms
        self._public_url = public_url.rstrip("/")
        self._support_email = support_email

    async def send(self, claimed: ClaimedNotice) -> Sent:
        """Send it; raises ``NoticeRejected`` or ``DependencyUnavailable`` as the channel does."""
        message, address = claimed.message, claimed.address
        if address is None:
            raise NoticeRejected(f"user {message.user_id} has no {message.channel} any more")
        context = MessageContext(claimed.merchant_name, self._public_url, self._support_email)
        if message.channel is Channel.EMAIL:
            email = email_for(message.about, context)
            await self._mailer.send(address, email.subject, email.text, email.html)
            return Sent(address, None)
        if message.channel is Channel.TELEGRAM:
            if self._telegram is None:
                raise NoticeRejected("the Telegram bot is off on this platform (TELEGRAM_MODE)")
            chat_id = int(address)
            provider_id = await self._telegram.send_text(
                chat_id, telegram_text_for(message.about, context)
            )
            return Sent(address, provider_id)
        provider_id = await self._sms.send(address, sms_text_for(message.about, context))
        return Sent(address, provider_id)


GivenUp = Callable[[NoticeMessage, str], Awaitable[None]]


@dataclass(frozen=True)
class DispatchOutcome:
    notice_id: str
    channel: Channel
    outcome: str  # sent, retrying, rejected, failed, skipped


class NoticeDispatch:
    """Each worker's part of sending the queued notices: lease the due ones, send each."""

    def __init__(
        self,
        store: NoticeStore,
        sender: NoticeSender,
        *,
        on_given_up: GivenUp,
        batch_size: int = 50,
        concurrency: int = 16,
    ) -> None:
        self._store = store
        self._sender = sender
        self._on_given_up = on_given_up
        self._batch_size = batch_size
        self._slots = asyncio.Semaphore(concurrency)

    async def dispatch_due(self) -> list[DispatchOutcome]:
        """Send what is due now, concurrently; returns what became of each."""
        claimed = await self._store.claim_due(self._batch_size, LEASE_SECONDS)
        return list(await asyncio.gather(*(self._attempt(c) for c in claimed)))

    async def _attempt(self, claimed: ClaimedNotice) -> DispatchOutcome:
        message = claimed.message
        notice_id = message.notice_id

        def outcome(name: str) -> DispatchOutcome:
            return DispatchOutcome(notice_id, message.channel, name)

        if claimed.address is None:
            # Unlinked, unverified or disabled since: there is nobody to send it to.
            await self._store.finish(notice_id, "skipped", error="no address any more")
            return outcome("skipped")
        async with self._slots:
            try:
                sent = await self._sender.send(claimed)
            except NoticeRejected as exc:
                logger.warning("notice %s by %s refused: %s", notice_id, message.channel, exc)
                await self._store.finish(notice_id, "rejected", error=str(exc)[:500])
                return outcome("rejected")
            except (DependencyUnavailable, OSError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
                delay = retry_delay(message.channel, claimed.attempt)
                if delay is not None:
                    await self._store.retry_later(notice_id, delay, error)
                    return outcome("retrying")
                await self._store.finish(notice_id, "failed", error=error)
                await self._on_given_up(message, error)
                return outcome("failed")
            except Exception as exc:  # a bug (a template, a stored address): not worth retrying
                logger.exception("notice %s by %s could not be sent", notice_id, message.channel)
                error = f"{type(exc).__name__}: {exc}"[:500]
                await self._store.finish(notice_id, "failed", error=error)
                await self._on_given_up(message, error)
                return outcome("failed")
        await self._store.finish(
            notice_id, "sent", sent_to=sent.sent_to, provider_id=sent.provider_id
        )
        return outcome("sent")


# --- the daily summary -------------------------------------------------------------------------


def summary_facts(merchant_id: str, day: date, row: Mapping[str, Any] | None) -> NoticeFacts:
    """A day's figures (a row of the daily metrics, None for a quiet day) as a daily summary."""
    figures = row or {}

    def count(name: str) -> str:
        return str(int(figures.get(name) or 0))

    def usdt(name: str) -> str:
        return format_usdt(int(figures.get(name) or 0))

    return NoticeFacts(
        notice=Notice.DAILY_SUMMARY,
        subject_id=merchant_id,
        source_id=f"daily_summary/{merchant_id}/{day.isoformat()}",
        merchant_id=merchant_id,
        occurred_at=datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC),
        facts={
            "date": day.isoformat(),
            "invoices_created": count("invoices_created"),
            "invoices_paid": count("invoices_paid"),
            "invoices_expired": count("invoices_expired"),
            "settlements": count("settlements"),
            "paid_gross": usdt("gross_volume"),
            "platform_fees": usdt("fees"),
            "settled_net": usdt("net_volume"),
        },
    )


class DailySummaries:
    """Once a day, yesterday's figures to every user who chose the daily summary."""

    def __init__(self, store: NoticeStore, reports: ReportReads, fanout: NoticeFanout) -> None:
        self._store = store
        self._reports = reports
        self._fanout = fanout

    async def for_day(self, day: date) -> list[NoticeMessage]:
        """The day's summaries, addressed; the same day twice names the same notices."""
        about = []
        for merchant_id in await self._store.merchants_wanting(Notice.DAILY_SUMMARY):
            rows = await self._reports.daily(merchant_id, day, day)
            about.append(summary_facts(merchant_id, day, rows[0] if rows else None))
        return await self._fanout.addressed(about)

    async def send_for(self, day: date) -> int:
        messages = await self.for_day(day)
        await self._fanout.publish(messages)
        return len(messages)


# --- linking a Telegram chat -------------------------------------------------------------------

LINK_TOKEN_TTL = timedelta(minutes=30)


class TelegramNotLinked(NotFound):
    """Unlinking a chat that is not linked."""

    code = "telegram_not_linked"


class TelegramLinkNeedsAUser(Forbidden):
    """A chat is linked to a merchant's user, not to an API key or an operator."""

    code = "telegram_link_needs_a_user"


@dataclass(frozen=True)
class LinkOffer:
    token: str
    deep_link: str | None  # https://t.me/<bot>?start=<token>, when the bot's name is known
    expires_at: datetime


class TelegramLinks:
    """A merchant user links a Telegram chat with a one-time deep link (``/start <token>``)."""

    def __init__(self, store: NoticeStore, audit: AuditLog, *, bot_username: str | None) -> None:
        self._store = store
        self._audit = audit
        self._bot_username = bot_username

    @staticmethod
    def _user_of(principal: Principal) -> tuple[str, str]:
        if principal.kind != "user" or principal.merchant_id is None:
            raise TelegramLinkNeedsAUser(
                "a Telegram chat is linked to a merchant's user: use a user's access token"
            )
        return principal.actor_id, principal.merchant_id

    async def offer(self, principal: Principal, now: datetime) -> LinkOffer:
        user_id, merchant_id = self._user_of(principal)
        # 24 random bytes, URL-safe: Telegram's start parameter allows [A-Za-z0-9_-], 1–64.
        token = secrets.token_urlsafe(24)
        expires_at = now + LINK_TOKEN_TTL
        await self._store.add_link_token(token, user_id, merchant_id, expires_at)
        link = None
        if self._bot_username:
            link = f"https://t.me/{self._bot_username}?start={token}"
        return LinkOffer(token, link, expires_at)

    async def link(self, token: str, chat_id: int, username: str | None) -> ChatUser | None:
        """The chat linked to the token's user, or None (unknown, used or expired). A chat that
        now acts as a merchant's user is in the merchant's audit log, like a new API key."""
        linked = await self._store.redeem_link_token(token, chat_id, username)
        if linked is not None:
            await self._audit.append(
                AuditEntry(
                    action="telegram chat linked",
                    result="ok",
                    actor_kind="user",
                    merchant_id=linked.merchant_id,
                    actor_id=linked.user_id,
                    actor_role=str(linked.role),
                    target_id=str(chat_id),
                    details={"telegram_username": username},
                )
            )
        return linked

    async def chat_user(self, chat_id: int) -> ChatUser | None:
        return await self._store.chat_user(chat_id)

    async def status(self, principal: Principal) -> dict[str, Any] | None:
        user_id, _ = self._user_of(principal)
        return await self._store.telegram_chat(user_id)

    async def unlink(self, principal: Principal) -> None:
        user_id, _ = self._user_of(principal)
        if not await self._store.unlink_chat(user_id):
            raise TelegramNotLinked("no Telegram chat is linked to this user")
