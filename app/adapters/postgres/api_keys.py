"""API keys in PostgreSQL (migrations/0009_access.sql): names, scopes, expiry, rolling, revoking.

Only the HMAC of a key's secret is stored (app/services/credentials.py); checking a presented
secret against it is the service's (app/services/access.py), this store only reads and writes rows.
Keys made before the pepper hold only the plain SHA-256 of their secret: their HMAC is computed
from it without the secret, once for all of them when a worker starts (``upgrade_legacy_hashes``)
and, for a key an older worker made during a rolling upgrade, when it is first read
(``credentials``). Such a key keeps working throughout, with the scopes its row holds.
"""

# SQL built from constant column lists and conditions; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from app.adapters.postgres.pool import Connections, SqlStore
from app.domain.access import ALL_SCOPES, Scope
from app.domain.merchant import Merchant
from app.services.credentials import API_KEY, SecretDigests, new_credential
from app.services.ports import ApiKeyRecord, KeyCredentials

logger = logging.getLogger(__name__)

FIRST_KEY_NAME = "default key"

_KEY_COLUMNS = """
    key_id, merchant_id, name, scopes, created_at, expires_at, revoked_at, rolled_at,
    previous_valid_until, created_by
"""
# The same columns of ``api_keys k`` in a join.
_K_KEY_COLUMNS = ", ".join(f"k.{column.strip()}" for column in _KEY_COLUMNS.split(","))


def read_scopes(key_id: str, values: Iterable[str]) -> frozenset[Scope]:
    """The scopes a row holds. A name this release does not know (written by a newer one, or
    by hand) is left out with a warning: the key keeps the scopes that are known, and an unknown
    one grants nothing, rather than every request with the key failing."""
    scopes: set[Scope] = set()
    for value in values:
        try:
            scopes.add(Scope(value))
        except ValueError:
            logger.warning("API key %s holds the unknown scope %r; ignored", key_id, value)
    return frozenset(scopes)


def key_from_row(row: Sequence[Any]) -> ApiKeyRecord:
    (key_id, merchant_id, name, scopes, created_at, expires_at, revoked_at, rolled_at,
     previous_valid_until, created_by) = row  # fmt: skip
    return ApiKeyRecord(
        key_id=key_id,
        merchant_id=merchant_id,
        name=name,
        scopes=read_scopes(key_id, scopes),
        created_at=created_at,
        expires_at=expires_at,
        revoked_at=revoked_at,
        rolled_at=rolled_at,
        previous_valid_until=previous_valid_until,
        created_by=created_by,
    )


async def insert_key(cur: Any, key: ApiKeyRecord, secret_hmac: bytes) -> None:
    """Insert ``key`` with ``cursor``, so a caller can make it part of its own transaction (a
    new merchant and its first key are one)."""
    await cur.execute(
        "INSERT INTO api_keys (key_id, merchant_id, name, scopes, secret_hmac, created_at,"
        " expires_at, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (key.key_id, key.merchant_id, key.name, sorted(scope.value for scope in key.scopes),
         secret_hmac, key.created_at, key.expires_at, key.created_by),
    )  # fmt: skip


def first_key(merchant_id: str, digests: SecretDigests) -> tuple[ApiKeyRecord, bytes, str]:
    """A new merchant's first key, made by the operator: every scope, no expiry.

    Returns the record, its secret's HMAC to store, and the key in clear, shown this once.
    """
    credential = new_credential(API_KEY)
    record = ApiKeyRecord(
        key_id=credential.credential_id,
        merchant_id=merchant_id,
        name=FIRST_KEY_NAME,
        scopes=ALL_SCOPES,
        created_at=datetime.now(UTC),
        created_by="operator",
    )
    return record, digests.of(credential.secret), str(credential)


class PostgresApiKeys(SqlStore):
    """``ApiKeyStore`` over the worker's PostgreSQL pool."""

    def __init__(self, pool: Connections, digests: SecretDigests) -> None:
        super().__init__(pool)
        self._digests = digests

    async def add(self, key: ApiKeyRecord, secret_hmac: bytes) -> None:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await insert_key(cur, key, secret_hmac)

    async def credentials(self, key_id: str) -> KeyCredentials | None:
        """The key, its digests and its merchant; None if unknown or revoked.

        A key an older worker made holds only its secret's SHA-256: its HMAC is computed here
        and written back, so the next read finds the row upgraded. Two workers doing so at once
        write the same HMAC; the second write finds nothing left to do.
        """
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                f"SELECT {_K_KEY_COLUMNS}, k.secret_hmac, k.secret_sha256,"
                " k.previous_secret_hmac, m.merchant_id, m.name, m.fee_percentage,"
                " m.confirmation_override, m.underpaid_tolerance, m.suspended_at IS NOT NULL"
                " FROM api_keys k JOIN merchants m USING (merchant_id)"
                " WHERE k.key_id = %s AND k.revoked_at IS NULL",
                (key_id,),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            secret_hmac, secret_sha256, previous_secret_hmac = row[10:13]
            if secret_hmac is None:
                secret_hmac = self._digests.of_legacy(bytes(secret_sha256))
                await cur.execute(
                    "UPDATE api_keys SET secret_hmac = %s, secret_sha256 = NULL"
                    " WHERE key_id = %s AND secret_hmac IS NULL",
                    (secret_hmac, key_id),
                )
                logger.info("API key %s: its legacy SHA-256 digest is now an HMAC", key_id)
        return KeyCredentials(
            key=key_from_row(row[:10]),
            secret_hmac=bytes(secret_hmac),
            previous_secret_hmac=(
                None if previous_secret_hmac is None else bytes(previous_secret_hmac)
            ),
            merchant=Merchant(*row[13:18]),
            suspended=bool(row[18]),
        )

    async def keys(self, merchant_id: str) -> list[ApiKeyRecord]:
        """Every key of the merchant, revoked ones too, newest first."""
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE merchant_id = %s"
                " ORDER BY created_at DESC, key_id DESC",
                (merchant_id,),
            )
            rows = await cur.fetchall()
        return [key_from_row(row) for row in rows]

    async def revoke(self, merchant_id: str, key_id: str) -> ApiKeyRecord | None:
        """The key as revoked now; None if it is not the merchant's or was revoked already."""
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "UPDATE api_keys SET revoked_at = now()"
                " WHERE key_id = %s AND merchant_id = %s AND revoked_at IS NULL"
                f" RETURNING {_KEY_COLUMNS}",
                (key_id, merchant_id),
            )
            row = await cur.fetchone()
        return None if row is None else key_from_row(row)

    async def roll(
        self, merchant_id: str, key_id: str, secret_hmac: bytes, previous_valid_until: datetime
    ) -> ApiKeyRecord | None:
        """Give the key a new secret; the current one stays valid until ``previous_valid_until``.

        A key that still holds only a legacy SHA-256 has its HMAC computed as its previous
        secret, so rolling it leaves its old secret the same grace as any other key's. The row
        is locked between reading the current digest and replacing it, so two rolls at once do
        not lose the secret the first one handed out as "previous".
        """
        async with self._transaction() as cur:
            await cur.execute(
                "SELECT secret_hmac, secret_sha256 FROM api_keys"
                " WHERE key_id = %s AND merchant_id = %s AND revoked_at IS NULL FOR UPDATE",
                (key_id, merchant_id),
            )
            current = await cur.fetchone()
            if current is None:
                return None
            previous = (
                bytes(current[0])
                if current[0] is not None
                else self._digests.of_legacy(bytes(current[1]))
            )
            await cur.execute(
                "UPDATE api_keys SET previous_secret_hmac = %s, secret_hmac = %s,"
                " secret_sha256 = NULL, previous_valid_until = %s, rolled_at = now()"
                f" WHERE key_id = %s RETURNING {_KEY_COLUMNS}",
                (previous, secret_hmac, previous_valid_until, key_id),
            )
            row = await cur.fetchone()
        return None if row is None else key_from_row(row)

    async def upgrade_legacy_hashes(self) -> int:
        """Replace every legacy SHA-256 digest by its HMAC; how many keys were upgraded.

        One transaction: either every legacy key is upgraded or none is. The rows are locked as
        they are read, so workers starting together upgrade each key once; a key already
        upgraded is not selected again, so running this twice changes nothing the second time.
        """
        async with self._transaction() as cur:
            await cur.execute(
                "SELECT key_id, secret_sha256 FROM api_keys"
                " WHERE secret_sha256 IS NOT NULL AND secret_hmac IS NULL"
                " ORDER BY key_id FOR UPDATE",
            )
            legacy = await cur.fetchall()
            upgraded = 0
            for key_id, secret_sha256 in legacy:
                await cur.execute(
                    "UPDATE api_keys SET secret_hmac = %s, secret_sha256 = NULL"
                    " WHERE key_id = %s AND secret_hmac IS NULL",
                    (self._digests.of_legacy(bytes(secret_sha256)), key_id),
                )
                upgraded += cur.rowcount
        if upgraded:
            logger.info("upgraded %d API keys from a SHA-256 digest to an HMAC", upgraded)
        return upgraded
