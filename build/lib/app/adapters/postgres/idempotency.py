"""Idempotency keys of invoice creation in PostgreSQL (migrations/0006_idempotency_keys.sql)."""

from __future__ import annotations

import json

from app.adapters.postgres.pool import Connections
from app.services.ports import IdempotentRequest


class PostgresIdempotencyKeys:
    def __init__(self, pool: Connections) -> None:
        self._pool = pool

    async def claim(
        self, merchant_id: str, key: str, request: IdempotentRequest
    ) -> IdempotentRequest:
        """Record ``request`` under ``key`` unless the key is taken; return what the key holds."""
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "INSERT INTO idempotency_keys"
                " (merchant_id, idempotency_key, request_sha256, invoice_id, command)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (
                    merchant_id,
                    key,
                    request.request_sha256,
                    request.invoice_id,
                    json.dumps(request.command),
                ),
            )
            await cur.execute(
                "SELECT request_sha256, invoice_id, command FROM idempotency_keys"
                " WHERE merchant_id = %s AND idempotency_key = %s",
                (merchant_id, key),
            )
            row = await cur.fetchone()
        return IdempotentRequest(request_sha256=row[0], invoice_id=row[1], command=row[2])

    async def find(self, merchant_id: str, key: str) -> IdempotentRequest | None:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT request_sha256, invoice_id, command FROM idempotency_keys"
                " WHERE merchant_id = %s AND idempotency_key = %s",
                (merchant_id, key),
            )
            row = await cur.fetchone()
        return None if row is None else IdempotentRequest(row[0], row[1], row[2])
