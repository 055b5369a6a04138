"""Merchants and API keys, stored in PostgreSQL.

An API key looks like ``ck_<key id>_<secret>``. The key id finds the row; the secret is compared
with the stored SHA-256 in constant time. Keys are shown once, at creation. A worker keeps a short
in-memory cache of authenticated keys so a request does not cost a database round trip; a revoked
key stops working within ``AUTH_CACHE_SECONDS``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from app.adapters.postgres.pool import Connections
from app.domain.confirmations import check_confirmation_override
from app.domain.fees import DEFAULT_FEE_PERCENTAGE, parse_fee_percentage
from app.domain.merchant import Merchant

API_KEY_PREFIX = "ck_"
AUTH_CACHE_SECONDS = 30.0
_AUTH_CACHE_MAX = 10_000


@dataclass(frozen=True)
class IssuedKey:
    merchant: Merchant
    api_key: str


def new_merchant_id() -> str:
    return f"mer_{secrets.token_hex(10)}"


def _new_api_key() -> tuple[str, str, str]:
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return key_id, secret, f"{API_KEY_PREFIX}{key_id}_{secret}"


def _split_api_key(api_key: str) -> tuple[str, str] | None:
    if not api_key.startswith(API_KEY_PREFIX):
        return None
    key_id, sep, secret = api_key[len(API_KEY_PREFIX) :].partition("_")
    if not sep or len(key_id) != 16 or not secret:
        return None
    return key_id, secret


def _sha256(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class PostgresMerchantStore:
    """Merchant accounts and key checks over the worker's PostgreSQL pool."""

    def __init__(self, pool: Connections) -> None:
        self._pool = pool
        self._auth_cache: dict[str, tuple[float, Merchant]] = {}

    async def create_merchant(
        self,
        name: str,
        *,
        fee_percentage: object = DEFAULT_FEE_PERCENTAGE,
        confirmation_override: int | None = None,
    ) -> IssuedKey:
        if not name.strip() or len(name) > 200:
            raise ValueError("name must be 1 to 200 characters")
        merchant = Merchant(
            merchant_id=new_merchant_id(),
            name=name.strip(),
            fee_percentage=parse_fee_percentage(fee_percentage),
            confirmation_override=(
                None
                if confirmation_override is None
                else check_confirmation_override(confirmation_override, field="confirmations")
            ),
        )
        key_id, secret, api_key = _new_api_key()
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("BEGIN")
            try:
                await cur.execute(
                    "INSERT INTO merchants"
                    " (merchant_id, name, fee_percentage, confirmation_override)"
                    " VALUES (%s, %s, %s, %s)",
                    (
                        merchant.merchant_id,
                        merchant.name,
                        merchant.fee_percentage,
                        merchant.confirmation_override,
                    ),
                )
                await cur.execute(
                    "INSERT INTO api_keys (key_id, merchant_id, secret_sha256) VALUES (%s, %s, %s)",
                    (key_id, merchant.merchant_id, _sha256(secret)),
                )
            except BaseException:
                await cur.execute("ROLLBACK")
                raise
            await cur.execute("COMMIT")
        return IssuedKey(merchant, api_key)

    async def get(self, merchant_id: str) -> Merchant | None:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT merchant_id, name, fee_percentage, confirmation_override"
                " FROM merchants WHERE merchant_id = %s",
                (merchant_id,),
            )
            row = await cur.fetchone()
        return None if row is None else Merchant(*row)

    async def authenticate(self, api_key: str) -> Merchant | None:
        """The merchant owning ``api_key``, or None for an unknown, malformed or revoked key."""
        now = time.monotonic()
        cached = self._auth_cache.get(api_key)
        if cached is not None and cached[0] > now:
            return cached[1]
        parts = _split_api_key(api_key)
        if parts is None:
            return None
        key_id, secret = parts
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT k.secret_sha256, m.merchant_id, m.name, m.fee_percentage,"
                " m.confirmation_override FROM api_keys k JOIN merchants m USING (merchant_id)"
                " WHERE k.key_id = %s AND k.revoked_at IS NULL",
                (key_id,),
            )
            row = await cur.fetchone()
        if row is None or not hmac.compare_digest(bytes(row[0]), _sha256(secret)):
            return None
        merchant = Merchant(*row[1:])
        if len(self._auth_cache) >= _AUTH_CACHE_MAX:
            self._auth_cache.clear()
        self._auth_cache[api_key] = (now + AUTH_CACHE_SECONDS, merchant)
        return merchant

    async def revoke_keys(self, merchant_id: str) -> int:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "UPDATE api_keys SET revoked_at = now()"
                " WHERE merchant_id = %s AND revoked_at IS NULL",
                (merchant_id,),
            )
            return int(cur.rowcount)
