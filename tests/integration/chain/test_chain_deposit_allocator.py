"""Deposit addresses allocated from the PostgreSQL sequence (migration 0003)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.adapters.postgres.deposit_addresses import DepositAddressAllocator
from app.adapters.tron.deposit_addresses import derive_deposit_address, xpub_fingerprint
from app.adapters.tron.settings import DEV_XPUB

pytestmark = pytest.mark.integration


async def test_each_invoice_gets_its_own_derived_address(pg_pool: Any) -> None:
    allocator = DepositAddressAllocator(pg_pool, DEV_XPUB)

    first = await allocator.allocate("inv_1")
    second = await allocator.allocate("inv_2")

    assert second.index > first.index
    assert first.address == derive_deposit_address(DEV_XPUB, first.index)
    assert second.address == derive_deposit_address(DEV_XPUB, second.index)
    assert first.address != second.address


async def test_asking_again_for_an_invoice_returns_its_address(pg_pool: Any) -> None:
    allocator = DepositAddressAllocator(pg_pool, DEV_XPUB)

    first = await allocator.allocate("inv_again")
    again = await allocator.allocate("inv_again")

    assert again == first
    assert await allocator.get("inv_again") == first
    assert await allocator.get("inv_unknown") is None


async def test_an_index_taken_by_a_rolled_back_transaction_is_never_reused(
    pg_pool: Any,
) -> None:
    allocator = DepositAddressAllocator(pg_pool, DEV_XPUB)
    before = await allocator.allocate("inv_before")
    async with pg_pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("BEGIN")
        await cur.execute("SELECT nextval('deposit_address_index_seq')")
        (taken,) = await cur.fetchone()
        await cur.execute("ROLLBACK")

    after = await allocator.allocate("inv_after")

    assert before.index < taken < after.index


async def test_concurrent_allocations_never_share_an_index_or_address(pg_pool: Any) -> None:
    allocator = DepositAddressAllocator(pg_pool, DEV_XPUB)

    allocated = await asyncio.gather(*(allocator.allocate(f"inv_{i}") for i in range(20)))
    same_invoice = await asyncio.gather(*(allocator.allocate("inv_twice") for _ in range(5)))

    assert len({a.index for a in allocated}) == 20
    assert len({a.address for a in allocated}) == 20
    assert len(set(same_invoice)) == 1


async def test_the_row_records_the_xpub_fingerprint_and_no_key(pg_pool: Any) -> None:
    allocator = DepositAddressAllocator(pg_pool, DEV_XPUB)
    allocated = await allocator.allocate("inv_row")

    async with pg_pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT derivation_index, address, invoice_id, xpub_fingerprint, created_at"
            " FROM deposit_addresses WHERE invoice_id = 'inv_row'"
        )
        row = await cur.fetchone()

    assert row[:4] == (allocated.index, allocated.address, "inv_row", xpub_fingerprint(DEV_XPUB))
    assert row[4] is not None
