"""Deposit addresses in PostgreSQL (migration 0003): allocation, and which addresses are ours.

Indices come from a PostgreSQL sequence: sequences are not transactional, so an index handed out
once is never handed out again, even when the transaction that took it rolls back (a gap is
harmless; a reused address would mix two invoices' money). The address of an index is derived
from the account xpub (app/adapters/tron/deposit_addresses.py).
"""

from __future__ import annotations

from collections.abc import Collection

from app.adapters.postgres.pool import Connections
from app.adapters.tron import metrics
from app.adapters.tron.deposit_addresses import (
    DepositAddress,
    derive_deposit_address,
    validate_account_xpub,
    xpub_fingerprint,
)


class DepositAddressAllocator:
    """Hands out one deposit address per invoice from a PostgreSQL sequence (migration 0003).

    ``allocate`` is idempotent per invoice: asking again for the same invoice returns the address
    it already has, so a redelivered command does not burn a second index.
    """

    def __init__(self, pool: Connections, xpub: str) -> None:
        validate_account_xpub(xpub)
        self._pool = pool
        self._xpub = xpub
        self._fingerprint = xpub_fingerprint(xpub)

    async def allocate(self, invoice_id: str) -> DepositAddress:
        existing = await self.get(invoice_id)
        if existing is not None:
            return existing
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT nextval('deposit_address_index_seq')")
            row = await cur.fetchone()
            index = int(row[0])
            address = derive_deposit_address(self._xpub, index)
            await cur.execute(
                "INSERT INTO deposit_addresses"
                " (derivation_index, address, invoice_id, xpub_fingerprint)"
                " VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (invoice_id) DO NOTHING RETURNING derivation_index",
                (index, address, invoice_id, self._fingerprint),
            )
            inserted = await cur.fetchone()
        if inserted is None:
            # A concurrent allocate for the same invoice won; its index stands, ours is a gap.
            winner = await self.get(invoice_id)
            if winner is None:  # pragma: no cover - the conflicting row cannot disappear
                raise RuntimeError(f"deposit address of invoice {invoice_id} vanished")
            return winner
        metrics.DEPOSIT_ADDRESSES_ALLOCATED.inc()
        return DepositAddress(index, address)

    async def get(self, invoice_id: str) -> DepositAddress | None:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT derivation_index, address FROM deposit_addresses WHERE invoice_id = %s",
                (invoice_id,),
            )
            row = await cur.fetchone()
        return None if row is None else DepositAddress(int(row[0]), str(row[1]))


class PostgresDepositAddressFilter:
    """One indexed query per call on ``deposit_addresses`` (its unique ``address`` index).

    Every deposit address ever allocated counts, whatever xpub it came from: after a rotation of
    ``TRON_XPUB`` payments to the invoices of the old one must still be seen. If the query fails
    the exception fails the watcher's poll, the cursor does not move and the block is retried.
    """

    def __init__(self, pool: Connections) -> None:
        self._pool = pool

    async def ours(self, addresses: Collection[str]) -> set[str]:
        candidates = sorted(set(addresses))
        if not candidates:
            return set()
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT address FROM deposit_addresses WHERE address = ANY(%s::text[])",
                (candidates,),
            )
            rows = await cur.fetchall()
        return {str(row[0]) for row in rows}
