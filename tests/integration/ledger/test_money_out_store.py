"""Refunds and payouts in PostgreSQL (app/adapters/postgres/money_out.py) with the journal they
move: the debit checked against the balance under the merchant's lock, one transfer per
idempotency key, a stale change refused, a movement booked once, and a journal that the
database itself refuses to leave unbalanced."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import aiopg
import psycopg2
import pytest

from app.adapters.postgres.journal import book
from app.adapters.postgres.ledger import PostgresLedger
from app.adapters.postgres.money_out import PostgresMoneyOut
from app.domain.errors import AlreadyExists, InsufficientBalance, RefundNotAllowed
from app.domain.ledger import in_flight_account, merchant_account
from app.domain.money_out import Attempt, Stage, TransferKind, request_transfer
from app.services.ports import StaleTransfer
from app.settings import Settings
from tests.unit.domain.factories import new_settlement, usdt

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

CUSTOMER = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def pool() -> AsyncIterator[aiopg.Pool]:
    pool = await aiopg.create_pool(Settings.from_env().database_url, minsize=1, maxsize=6)
    try:
        yield pool
    finally:
        pool.close()
        await pool.wait_closed()


async def settled_merchant(pool: aiopg.Pool, gross: str = "100") -> tuple[str, str]:
    """A new merchant with one settled invoice of ``gross`` at 1 %: (merchant id, invoice id)."""
    suffix = uuid.uuid4().hex[:20]
    settlement = new_settlement(
        invoice_id=f"inv_{suffix}",
        merchant_id=f"mer_{suffix}",
        gross_amount=usdt(gross),
        fee_percentage=Decimal("1"),
    )
    await PostgresLedger(pool).book_settlement(settlement)
    return settlement.merchant_id, settlement.invoice_id


async def balance(pool: aiopg.Pool, account: str, currency: str = "USDT") -> int:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT coalesce(sum(amount), 0) FROM ledger_entries"
            " WHERE account = %s AND currency = %s",
            (account, currency),
        )
        return int((await cur.fetchone())[0])


def payout(merchant_id: str, amount: str, key: str = "") -> object:
    return request_transfer(
        transfer_id=f"po_{uuid.uuid4().hex[:24]}",
        kind=TransferKind.PAYOUT,
        merchant_id=merchant_id,
        amount=usdt(amount),
        to_address=CUSTOMER,
        at=AT,
        causation_id=f"payout:{merchant_id}:{key}",
    )


async def test_a_payout_is_debited_once_per_key_and_never_beyond_the_balance(
    pool: aiopg.Pool,
) -> None:
    store = PostgresMoneyOut(pool, origin=f"test-{uuid.uuid4().hex[:8]}")
    merchant_id, _ = await settled_merchant(pool)  # net 99.00
    step = payout(merchant_id, "60")
    created, replayed = await store.request(step, idempotency_key="k1", fingerprint="f1")
    assert not replayed and created.stage is Stage.APPROVED
    assert await balance(pool, merchant_account(merchant_id)) == usdt("39")
    assert await balance(pool, in_flight_account(merchant_id)) == usdt("60")

    # The same key again: the same payout, nothing debited twice.
    again, replayed = await store.request(
        payout(merchant_id, "60"), idempotency_key="k1", fingerprint="f1"
    )
    assert replayed and again.transfer_id == created.transfer_id
    assert await balance(pool, merchant_account(merchant_id)) == usdt("39")
    with pytest.raises(AlreadyExists):
        await store.request(payout(merchant_id, "1"), idempotency_key="k1", fingerprint="f2")
    with pytest.raises(InsufficientBalance, match="39"):
        await store.request(payout(merchant_id, "40"), idempotency_key="k2", fingerprint="f3")

    stored = await store.get(created.transfer_id, merchant_id=merchant_id)
    assert stored == created
    assert await store.get(created.transfer_id, merchant_id="mer_someone_else") is None
    unpublished = [payload for _, payload in await store.unpublished(10_000)]
    assert any(p["aggregate_id"] == created.transfer_id for p in unpublished)


async def test_two_payouts_at_once_cannot_both_spend_one_balance(pool: aiopg.Pool) -> None:
    store = PostgresMoneyOut(pool, origin=f"test-{uuid.uuid4().hex[:8]}")
    merchant_id, _ = await settled_merchant(pool)  # net 99.00
    results = await asyncio.gather(
        *(
            store.request(payout(merchant_id, "60"), idempotency_key=f"k{i}", fingerprint="f")
            for i in range(4)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(result, Exception) for result in results) == 1
    assert sum(isinstance(result, InsufficientBalance) for result in results) == 3
    assert await balance(pool, merchant_account(merchant_id)) == usdt("39")


async def test_a_refund_takes_at_most_what_the_invoice_settled(pool: aiopg.Pool) -> None:
    store = PostgresMoneyOut(pool, origin=f"test-{uuid.uuid4().hex[:8]}")
    merchant_id, invoice_id = await settled_merchant(pool, "12")
    await settled_merchant(pool)  # another merchant's money is not this one's balance

    def refund(amount: str) -> object:
        return request_transfer(
            transfer_id=f"rf_{uuid.uuid4().hex[:24]}",
            kind=TransferKind.REFUND,
            merchant_id=merchant_id,
            amount=usdt(amount),
            to_address=CUSTOMER,
            at=AT,
            invoice_id=invoice_id,
            causation_id=f"refund:{amount}",
        )

    context = await store.refund_context(merchant_id, invoice_id)
    assert context.settled_gross == usdt("12") and context.refunded == 0
    with pytest.raises(InsufficientBalance):  # net is 11.88: the balance does not cover 12
        await store.request(
            refund("12"), idempotency_key="r0", fingerprint="f", refundable_check=True
        )
    await store.request(refund("2"), idempotency_key="r1", fingerprint="f", refundable_check=True)
    assert (await store.refund_context(merchant_id, invoice_id)).refunded == usdt("2")
    # More balance from another invoice, but this invoice has only 10.00 left to refund.
    await PostgresLedger(pool).book_settlement(
        new_settlement(
            invoice_id=f"inv_{uuid.uuid4().hex[:20]}",
            merchant_id=merchant_id,
            gross_amount=usdt("50"),
            fee_percentage=Decimal("1"),
        )
    )
    with pytest.raises(RefundNotAllowed, match="10 USDT left"):
        await store.request(
            refund("10.01"), idempotency_key="r2", fingerprint="f", refundable_check=True
        )
    await store.request(refund("10"), idempotency_key="r3", fingerprint="f", refundable_check=True)


async def test_a_stale_change_is_refused_and_a_movement_is_booked_once(pool: aiopg.Pool) -> None:
    store = PostgresMoneyOut(pool, origin=f"test-{uuid.uuid4().hex[:8]}")
    merchant_id, _ = await settled_merchant(pool)
    created, _ = await store.request(
        payout(merchant_id, "10"), idempotency_key="k", fingerprint="f"
    )
    attempt = Attempt(1, "ab" * 32, {"contract": [], "expiration": 1}, "0a02", 1_800_000_000_000)
    signing = created.signing(attempt, AT)
    await store.save(created, signing)
    with pytest.raises(StaleTransfer):
        await store.save(created, created.cancel(AT))  # read before the signing began
    stored = await store.get(created.transfer_id)
    assert stored is not None and stored.stage is Stage.SIGNING
    assert stored.attempt == attempt and stored.request_id == f"{created.transfer_id}:1"

    failed = stored.fail("the signer refused: limit_per_day: over", AT)
    await store.save(stored, failed)
    assert await balance(pool, merchant_account(merchant_id)) == usdt("99")
    # Booking the same movement again (a retried save) changes nothing.
    async with store._transaction() as cur:
        assert not await book(cur, failed.movement)
    assert await balance(pool, merchant_account(merchant_id)) == usdt("99")


async def test_the_database_refuses_a_journal_entry_that_does_not_balance(
    pool: aiopg.Pool,
) -> None:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("BEGIN")
        await cur.execute(
            "INSERT INTO ledger_transactions (kind, reference) VALUES ('test', %s) RETURNING tx_id",
            (uuid.uuid4().hex,),
        )
        (tx_id,) = await cur.fetchone()
        await cur.execute(
            "INSERT INTO ledger_entries (tx_id, account, amount)"
            " VALUES (%s, 'a', 5), (%s, 'b', -4)",
            (tx_id, tx_id),
        )
        with pytest.raises(psycopg2.errors.CheckViolation, match="does not balance"):
            await cur.execute("COMMIT")


async def test_a_payout_schedule_is_kept_replaced_and_removed(pool: aiopg.Pool) -> None:
    from app.adapters.postgres.payout_schedules import PostgresPayoutSchedules
    from app.domain.payout_schedule import PayoutSchedule

    schedules = PostgresPayoutSchedules(pool)
    merchant_id, _ = await settled_merchant(pool)
    async with pool.acquire() as conn, conn.cursor() as cur:  # a merchant row to refer to
        await cur.execute(
            "INSERT INTO merchants (merchant_id, name) VALUES (%s, 'Schedule Shop')",
            (merchant_id,),
        )
    weekly = PayoutSchedule(merchant_id, "weekly", CUSTOMER, hour=17, weekday=4, keep_amount=5)
    await schedules.put(weekly)
    assert await schedules.get(merchant_id) == weekly
    daily = PayoutSchedule(merchant_id, "daily", CUSTOMER, minimum_amount=usdt("50"))
    await schedules.put(daily)
    assert await schedules.get(merchant_id) == daily
    assert daily in await schedules.all()
    assert await schedules.delete(merchant_id) and not await schedules.delete(merchant_id)
    assert await schedules.get(merchant_id) is None


async def test_a_platform_drives_and_publishes_only_its_own_transfers(pool: aiopg.Pool) -> None:
    ours = PostgresMoneyOut(pool, origin=f"ours-{uuid.uuid4().hex[:8]}")
    theirs = PostgresMoneyOut(pool, origin=f"theirs-{uuid.uuid4().hex[:8]}")
    merchant_id, _ = await settled_merchant(pool)
    mine, _ = await ours.request(payout(merchant_id, "1"), idempotency_key="a", fingerprint="f")
    other, _ = await theirs.request(payout(merchant_id, "2"), idempotency_key="b", fingerprint="f")
    assert [t.transfer_id for t in await ours.open_transfers(100)] == [mine.transfer_id]
    assert [t.transfer_id for t in await theirs.open_transfers(100)] == [other.transfer_id]
    published = [payload["aggregate_id"] for _, payload in await ours.unpublished(100)]
    assert published == [mine.transfer_id]
    # Reads by merchant see both: one merchant, one balance, whichever platform recorded it.
    listed = await ours.list(merchant_id, TransferKind.PAYOUT, limit=10)
    assert {t.transfer_id for t in listed} == {mine.transfer_id, other.transfer_id}
