"""Notification preferences in PostgreSQL (migrations/0025): a user's choice read back as made,
replaced by the next one, none until made; the table itself refuses a number that is not E.164
and SMS notices without a number, whatever writes to it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiopg
import psycopg2
import pytest

from app.adapters.postgres.notification_preferences import PostgresNotificationPreferences
from app.domain.notifications import (
    DEFAULT_PREFERENCES,
    Channel,
    Notice,
    NotificationPreferences,
)
from app.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]


@pytest.fixture
async def pool() -> AsyncIterator[Any]:
    pool = await aiopg.create_pool(Settings.from_env().database_url, minsize=1, maxsize=2)
    try:
        yield pool
    finally:
        pool.close()
        await pool.wait_closed()


async def execute(pool: Any, sql: str, *values: Any) -> None:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(sql, values)


async def a_user(pool: Any) -> tuple[str, str]:
    merchant_id, user_id = f"mer_n{secrets.token_hex(8)}", f"usr_n{secrets.token_hex(8)}"
    await execute(pool, "INSERT INTO merchants (merchant_id, name) VALUES (%s, %s)",
                  merchant_id, f"Notified shop {merchant_id}")  # fmt: skip
    await execute(pool, "INSERT INTO users (user_id, email, merchant_id, role)"
                  " VALUES (%s, %s, %s, 'owner')", user_id, f"{user_id}@example.com",
                  merchant_id)  # fmt: skip
    return user_id, merchant_id


async def test_a_choice_is_read_back_as_made_and_replaced_by_the_next(pool: Any) -> None:
    store = PostgresNotificationPreferences(pool)
    user_id, merchant_id = await a_user(pool)
    assert await store.get(user_id) is None

    chosen = NotificationPreferences(
        {Channel.EMAIL: frozenset(Notice), Channel.SMS: frozenset({Notice.PAYOUT_FINISHED})},
        "+4915112345678",
    )
    await store.put(user_id, merchant_id, chosen)
    assert await store.get(user_id) == chosen

    quieter = chosen.changed({Channel.EMAIL: [], Channel.SMS: []}, None)
    await store.put(user_id, merchant_id, quieter)
    assert await store.get(user_id) == quieter
    await store.put(user_id, merchant_id, DEFAULT_PREFERENCES)
    assert await store.get(user_id) == DEFAULT_PREFERENCES


@pytest.mark.parametrize(
    ("sms", "number"),
    [(["payout_finished"], None), ([], "015112345678"), ([], "+49 151 1234")],
)
async def test_the_table_refuses_what_the_domain_refuses(
    pool: Any, sms: list[str], number: str | None
) -> None:
    user_id, merchant_id = await a_user(pool)
    with pytest.raises(psycopg2.errors.CheckViolation):
        await execute(
            pool,
            "INSERT INTO notification_preferences (user_id, merchant_id, email_notices,"
            " telegram_notices, sms_notices, sms_number) VALUES (%s, %s, '{}', '{}', %s, %s)",
            user_id,
            merchant_id,
            sms,
            number,
        )
