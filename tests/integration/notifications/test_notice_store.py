"""The notices' queue and Telegram chats in PostgreSQL (migrations/0026_notices.sql): a notice is
queued once per id, leased to one dispatcher at a time, addressed when it is claimed (an unlinked
chat or an unverified email gets nothing), and a link token links a chat once."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiopg
import pytest

from app.adapters.postgres.notices import PostgresNotices
from app.domain.access import Role
from app.domain.notifications import (
    DEFAULT_PREFERENCES,
    Channel,
    Notice,
    NoticeFacts,
    NoticeMessage,
)
from app.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

# This run's own notices: a platform's dispatchers claim only their origin's.
ORIGIN = f"test-notices-{secrets.token_hex(6)}"


@pytest.fixture
async def pool() -> AsyncIterator[Any]:
    pool = await aiopg.create_pool(Settings.from_env().database_url, minsize=1, maxsize=4)
    try:
        yield pool
    finally:
        pool.close()
        await pool.wait_closed()


async def execute(pool: Any, sql: str, *values: Any) -> None:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(sql, values)


async def a_merchant(pool: Any) -> str:
    merchant_id = f"mer_q{secrets.token_hex(8)}"
    await execute(pool, "INSERT INTO merchants (merchant_id, name) VALUES (%s, %s)",
                  merchant_id, f"Queued shop {merchant_id}")  # fmt: skip
    return merchant_id


async def a_user(pool: Any, merchant_id: str, *, verified: bool = True) -> str:
    user_id = f"usr_q{secrets.token_hex(8)}"
    await execute(pool, "INSERT INTO users (user_id, email, merchant_id, role, email_verified_at)"
                  " VALUES (%s, %s, %s, 'owner', %s)", user_id, f"{user_id}@example.com",
                  merchant_id, datetime.now(UTC) if verified else None)  # fmt: skip
    return user_id


def paid(merchant_id: str, invoice_id: str = "inv_q1") -> NoticeFacts:
    return NoticeFacts(
        notice=Notice.INVOICE_PAID,
        subject_id=invoice_id,
        source_id=f"evt_{secrets.token_hex(8)}",
        merchant_id=merchant_id,
        occurred_at=datetime.now(UTC),
        facts={"invoice_id": invoice_id, "amount": "9.99", "amount_received": "9.99"},
    )


async def mine(store: PostgresNotices, ids: set[str]) -> list[Any]:
    """Claim what is due of this run's origin: exactly ``ids``."""
    found = await store.claim_due(500, 60)
    assert {c.message.notice_id for c in found} == ids
    return found


async def test_a_notice_is_queued_once_and_leased_to_one_dispatcher(pool: Any) -> None:
    store = PostgresNotices(pool, ORIGIN)
    merchant_id = await a_merchant(pool)
    user_id = await a_user(pool, merchant_id)
    message = NoticeMessage.to(user_id, Channel.EMAIL, paid(merchant_id))

    assert await store.enqueue([message]) == [message.notice_id]
    assert await store.enqueue([message]) == []  # the same event fanned out again
    # Another platform on the same database does not send it.
    elsewhere = PostgresNotices(pool, f"elsewhere-{secrets.token_hex(6)}")
    assert await elsewhere.claim_due(500, 60) == []

    [claimed] = await mine(store, {message.notice_id})
    assert claimed.message == message
    assert claimed.attempt == 1
    assert claimed.address == f"{user_id}@example.com"
    assert claimed.merchant_name == f"Queued shop {merchant_id}"
    # Leased: nobody else gets it while the attempt runs.
    assert await store.claim_due(500, 60) == []

    await store.retry_later(message.notice_id, 0, "DependencyUnavailable: mail server down")
    [retried] = await mine(store, {message.notice_id})
    assert retried.attempt == 2

    await store.finish(message.notice_id, "sent", sent_to=claimed.address)
    [row] = await store.deliveries(user_id)
    assert row["status"] == "sent" and row["attempts"] == 2
    assert row["last_error"] is None and row["finished_at"] is not None


async def test_the_address_is_read_when_claimed(pool: Any) -> None:
    store = PostgresNotices(pool, ORIGIN)
    merchant_id = await a_merchant(pool)
    unverified = await a_user(pool, merchant_id, verified=False)
    linked = await a_user(pool, merchant_id)
    about = paid(merchant_id)
    to_unverified = NoticeMessage.to(unverified, Channel.EMAIL, about)
    to_chat = NoticeMessage.to(linked, Channel.TELEGRAM, about)

    token = secrets.token_urlsafe(24)
    await store.add_link_token(token, linked, merchant_id, datetime.now(UTC) + timedelta(hours=1))
    assert await store.redeem_link_token(token, 777_000_001, "shopkeeper") is not None
    await store.enqueue([to_unverified, to_chat])
    await store.unlink_chat(linked)  # after queueing: the notice must not reach the chat

    claimed = {c.message.notice_id: c for c in await mine(store, {to_unverified.notice_id,
                                                                   to_chat.notice_id})}  # fmt: skip
    assert claimed[to_unverified.notice_id].address is None
    assert claimed[to_chat.notice_id].address is None


async def test_recipients_carry_preferences_chat_and_only_verified_email(pool: Any) -> None:
    store = PostgresNotices(pool, ORIGIN)
    merchant_id = await a_merchant(pool)
    verified = await a_user(pool, merchant_id)
    unverified = await a_user(pool, merchant_id, verified=False)
    token = secrets.token_urlsafe(24)
    await store.add_link_token(token, verified, merchant_id, datetime.now(UTC) + timedelta(hours=1))
    await store.redeem_link_token(token, 777_000_002, None)

    found = {r.user_id: r for r in await store.recipients(merchant_id)}
    assert set(found) == {verified, unverified}
    assert found[verified].email == f"{verified}@example.com"
    assert found[verified].telegram_chat_id == 777_000_002
    assert found[verified].preferences == DEFAULT_PREFERENCES
    assert found[unverified].email is None and found[unverified].telegram_chat_id is None
    assert found[verified].channels_for(Notice.INVOICE_PAID, sms_enabled=True) == [Channel.TELEGRAM]


async def test_a_link_token_links_once_and_a_chat_moves_to_its_new_user(pool: Any) -> None:
    store = PostgresNotices(pool, ORIGIN)
    merchant_id = await a_merchant(pool)
    first, second = await a_user(pool, merchant_id), await a_user(pool, merchant_id)
    later = datetime.now(UTC) + timedelta(minutes=30)
    token = secrets.token_urlsafe(24)
    await store.add_link_token(token, first, merchant_id, later)

    linked = await store.redeem_link_token(token, 777_000_003, "ana")
    assert linked is not None
    assert (linked.user_id, linked.merchant_id, linked.role) == (first, merchant_id, Role.OWNER)
    assert await store.redeem_link_token(token, 777_000_003, "ana") is None  # used
    assert (await store.chat_user(777_000_003)) == linked

    expired = secrets.token_urlsafe(24)
    await store.add_link_token(expired, second, merchant_id, datetime.now(UTC) - timedelta(1))
    assert await store.redeem_link_token(expired, 777_000_004, None) is None

    # A newer token makes the older unused one void.
    older, newer = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    await store.add_link_token(older, second, merchant_id, later)
    await store.add_link_token(newer, second, merchant_id, later)
    assert await store.redeem_link_token(older, 777_000_003, None) is None
    moved = await store.redeem_link_token(newer, 777_000_003, None)
    assert moved is not None and moved.user_id == second
    assert await store.telegram_chat(first) is None  # the chat is the second user's now
    assert (await store.chat_user(777_000_003)) == moved

    assert await store.unlink_chat(second) is True
    assert await store.unlink_chat(second) is False
    assert await store.chat_user(777_000_003) is None


async def test_an_operator_queues_failed_notices_again(pool: Any) -> None:
    store = PostgresNotices(pool, ORIGIN)
    merchant_id = await a_merchant(pool)
    user_id = await a_user(pool, merchant_id)
    failed = NoticeMessage.to(user_id, Channel.EMAIL, paid(merchant_id))
    sent = NoticeMessage.to(user_id, Channel.EMAIL, paid(merchant_id, "inv_q2"))
    await store.enqueue([failed, sent])
    await mine(store, {failed.notice_id, sent.notice_id})
    await store.finish(failed.notice_id, "failed", error="DependencyUnavailable: SMTP down")
    await store.finish(sent.notice_id, "sent", sent_to="x@example.com")
    since = datetime.now(UTC) - timedelta(minutes=5)

    dry = await store.retry_failed(since=since, until=None, channel="email", limit=10, dry_run=True)
    assert [row["notice_id"] for row in dry] == [failed.notice_id]
    assert await store.retry_failed(since=since, until=None, channel="sms", limit=10,
                                    dry_run=False) == []  # fmt: skip
    queued = await store.retry_failed(since=since, until=None, channel=None, limit=10,
                                      dry_run=False)  # fmt: skip
    assert [row["notice_id"] for row in queued] == [failed.notice_id]
    [again] = await mine(store, {failed.notice_id})
    assert again.attempt == 1  # from the first attempt of its channel's schedule
    assert await store.retry_failed(since=since, until=None, channel=None, limit=10,
                                    dry_run=False) == []  # fmt: skip
