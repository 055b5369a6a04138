"""The settlement ledger in PostgreSQL: each settlement booked once, in double entry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import aiopg
import psycopg2
import pytest

from app.adapters.postgres.ledger import (
    CUSTOMER_FUNDS,
    PLATFORM_FEES,
    PostgresLedger,
    merchant_account,
)
from app.adapters.postgres.reconcile import PostgresSettlementBooks
from app.adapters.postgres.settlements import SettlementRecords
from app.domain.commands import settlement_id_for
from app.domain.settlement import Settlement
from app.domain.statuses import SettlementStatus
from app.services.ports import SettlementQuery
from app.settings import Settings
from tests.unit.domain.factories import T0, new_settlement, usdt

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]


@pytest.fixture
async def pool() -> AsyncIterator[aiopg.Pool]:
    pool = await aiopg.create_pool(Settings.from_env().database_url, minsize=1, maxsize=4)
    try:
        yield pool
    finally:
        pool.close()
        await pool.wait_closed()


def fresh_settlement(gross: str = "9.99") -> Settlement:
    suffix = uuid.uuid4().hex[:24]
    return new_settlement(
        invoice_id=f"inv_{suffix}",
        merchant_id=f"mer_{suffix[:20]}",
        gross_amount=usdt(gross),
        fee_percentage=Decimal("1"),
    )


async def rows(pool: aiopg.Pool, settlement_id: str) -> tuple[list[tuple], list[tuple]]:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT gross_amount, platform_fee_amount, net_amount, status FROM settlements"
            " WHERE settlement_id = %s",
            (settlement_id,),
        )
        settlements = await cur.fetchall()
        await cur.execute(
            "SELECT account, amount FROM ledger_entries WHERE settlement_id = %s ORDER BY entry_id",
            (settlement_id,),
        )
        entries = await cur.fetchall()
    return settlements, entries


async def test_a_settlement_is_booked_in_double_entry(pool: aiopg.Pool) -> None:
    settlement = fresh_settlement("9.99")
    booking = await PostgresLedger(pool).book_settlement(settlement)

    settlements, entries = await rows(pool, settlement.settlement_id)
    assert settlements == [(usdt("9.99"), usdt("0.10"), usdt("9.89"), "completed")]
    assert entries == [
        (CUSTOMER_FUNDS, -usdt("9.99")),
        (merchant_account(settlement.merchant_id), usdt("9.89")),
        (PLATFORM_FEES, usdt("0.10")),
    ]
    assert sum(amount for _, amount in entries) == 0
    assert booking.reference.startswith("ledger:")
    assert booking.credited_at.tzinfo is not None


async def test_booking_again_changes_nothing_and_answers_the_same(pool: aiopg.Pool) -> None:
    settlement = fresh_settlement("150.00")
    ledger = PostgresLedger(pool)
    first = await ledger.book_settlement(settlement)
    before = await rows(pool, settlement.settlement_id)

    again = await ledger.book_settlement(settlement)
    assert again == first
    assert await rows(pool, settlement.settlement_id) == before


async def test_concurrent_bookings_of_one_settlement_book_it_once(pool: aiopg.Pool) -> None:
    # Two workers during a handover: the second waits for the first and reads its booking.
    settlement = fresh_settlement("10000.00")
    ledger = PostgresLedger(pool)
    bookings = await asyncio.gather(*(ledger.book_settlement(settlement) for _ in range(4)))
    assert len(set(bookings)) == 1
    settlements, entries = await rows(pool, settlement.settlement_id)
    assert len(settlements) == 1
    assert len(entries) == 3


async def test_settlements_are_listed_newest_first_page_by_page_with_filters(
    pool: aiopg.Pool,
) -> None:
    merchant_id = f"mer_{uuid.uuid4().hex[:20]}"
    ledger = PostgresLedger(pool)
    booked = []
    for minute in range(5):
        settlement = new_settlement(
            invoice_id=f"inv_{uuid.uuid4().hex[:24]}",
            merchant_id=merchant_id,
            gross_amount=usdt("10"),
            fee_percentage=Decimal("1"),
            created_at=T0 + timedelta(minutes=minute),
        )
        await ledger.book_settlement(settlement)
        booked.append(settlement.settlement_id)
    records = SettlementRecords(pool)

    seen: list[str] = []
    cursor = None
    while True:
        page = await records.list(merchant_id, SettlementQuery(limit=2, cursor=cursor))
        seen += [row["settlement_id"] for row in page.rows]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == booked[::-1]

    window = await records.list(
        merchant_id,
        SettlementQuery(
            created_from=T0 + timedelta(minutes=1), created_to=T0 + timedelta(minutes=3)
        ),
    )
    assert [row["settlement_id"] for row in window.rows] == [booked[2], booked[1]]
    completed = await records.list(
        merchant_id, SettlementQuery(status=(SettlementStatus.COMPLETED,))
    )
    assert len(completed.rows) == 5
    failed = await records.list(merchant_id, SettlementQuery(status=(SettlementStatus.FAILED,)))
    assert failed.rows == []
    other = await records.list(f"mer_{uuid.uuid4().hex[:20]}", SettlementQuery())
    assert other.rows == []


async def reversal_entries(pool: aiopg.Pool, settlement_id: str) -> list[tuple]:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT e.account, e.amount FROM ledger_entries e JOIN ledger_transactions t"
            " USING (tx_id) WHERE t.kind = 'settlement_reversal' AND t.reference = %s"
            " ORDER BY e.entry_id",
            (settlement_id,),
        )
        return list(await cur.fetchall())


async def test_a_reversal_books_the_settlement_back_once_and_a_new_round_settles_again(
    pool: aiopg.Pool,
) -> None:
    settlement = fresh_settlement("9.99")
    ledger = PostgresLedger(pool)
    await ledger.book_settlement(settlement)

    reversals = await asyncio.gather(*(ledger.reverse_settlement(settlement) for _ in range(3)))
    assert len(set(reversals)) == 1 and reversals[0].reference.startswith("ledger:")
    settlements, entries = await rows(pool, settlement.settlement_id)
    assert settlements == [(usdt("9.99"), usdt("0.10"), usdt("9.89"), "reversed")]
    assert len(entries) == 3  # the settlement's own entries stay: nothing is deleted
    merchant = merchant_account(settlement.merchant_id)
    assert await reversal_entries(pool, settlement.settlement_id) == [
        (CUSTOMER_FUNDS, usdt("9.99")),
        (merchant, -usdt("9.89")),
        (PLATFORM_FEES, -usdt("0.10")),
    ]
    # The invoice paid again: round 2 is a settlement of its own, beside the reversed one.
    second = new_settlement(
        invoice_id=settlement.invoice_id,
        merchant_id=settlement.merchant_id,
        gross_amount=usdt("9.99"),
        fee_percentage=Decimal("1"),
    ).model_copy(update={"settlement_id": settlement_id_for(settlement.invoice_id, 2)})
    await ledger.book_settlement(second)
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE account = %s", (merchant,)
        )
        (balance,) = await cur.fetchone()
    assert balance == usdt("9.89")  # credited once in all
    books = PostgresSettlementBooks(pool)
    assert [
        differ
        for differ in await books.bookings_that_differ(10_000)
        if differ.invoice_id == settlement.invoice_id
    ] == []
    # A third settlement while round 2 stands is refused by the database itself.
    third = second.model_copy(update={"settlement_id": settlement_id_for(settlement.invoice_id, 3)})
    with pytest.raises(psycopg2.errors.UniqueViolation):
        await ledger.book_settlement(third)


async def test_only_a_completed_settlement_can_be_reversed(pool: aiopg.Pool) -> None:
    never_booked = fresh_settlement("3")
    with pytest.raises(RuntimeError, match="not booked, or not reversed"):
        await PostgresLedger(pool).reverse_settlement(never_booked)


async def test_a_settlement_reversal_booked_for_no_settlement_is_a_difference(
    pool: aiopg.Pool,
) -> None:
    stray = f"set_{uuid.uuid4().hex}"
    merchant = merchant_account(f"mer_{stray[4:24]}")  # accounts of its own: nobody's balance
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "WITH movement AS (INSERT INTO ledger_transactions (kind, reference, created_at)"
            " VALUES ('settlement_reversal', %s, now()) RETURNING tx_id)"
            " INSERT INTO ledger_entries (tx_id, account, amount)"
            " SELECT tx_id, account, amount FROM movement,"
            " (VALUES (%s, 1000000), (%s, -1000000)) AS e (account, amount)",
            (stray, merchant, f"{merchant}:in_flight"),
        )
    found = [
        differ
        for differ in await PostgresSettlementBooks(pool).bookings_that_differ(10_000)
        if differ.settlement_id == stray
    ]
    assert [(differ.status, differ.booked) for differ in found] == [(None, False)]
