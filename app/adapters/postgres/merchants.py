"""Merchants in PostgreSQL: the operator creates them, the payment rules and the admin read them.

``PostgresMerchantStore`` is what the workers and the operator's ``create-merchant`` use: a new
merchant comes with its first API key (every scope, shown once, stored as an HMAC through
app/adapters/postgres/api_keys.py). Checking keys is app/services/access.py's, over
``PostgresApiKeys``. ``PostgresMerchantAccounts`` is the platform admin's view: list, change the
fee or the confirmation override, suspend.
"""

# SQL built from constant column lists and conditions; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from app.adapters.postgres.api_keys import first_key, insert_key
from app.adapters.postgres.pool import Connections
from app.domain.confirmations import check_confirmation_override
from app.domain.fees import DEFAULT_FEE_PERCENTAGE, parse_fee_percentage
from app.domain.merchant import Merchant
from app.services.credentials import SecretDigests
from app.services.ports import MerchantAccount


@dataclass(frozen=True)
class IssuedKey:
    merchant: Merchant
    api_key: str


def new_merchant_id() -> str:
    return f"mer_{secrets.token_hex(10)}"


class PostgresMerchantStore:
    """Merchant accounts over the worker's PostgreSQL pool.

    ``digests`` is needed only to create merchants (their first key is stored as an HMAC under
    the pepper); a worker that only reads merchants does without.
    """

    def __init__(self, pool: Connections, digests: SecretDigests | None = None) -> None:
        self._pool = pool
        self._digests = digests

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
        if self._digests is None:
            # A wiring mistake, not bad input (checked after the input, so a bad fee is still
            # named as such): without the pepper the first key cannot be stored.
            raise RuntimeError("creating a merchant needs the API key pepper's SecretDigests")
        key, secret_hmac, api_key = first_key(merchant.merchant_id, self._digests)
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            # One transaction: a merchant never exists without the key the operator is shown.
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
                await insert_key(cur, key, secret_hmac)
            except BaseException:
                await cur.execute("ROLLBACK")
                raise
            await cur.execute("COMMIT")
        return IssuedKey(merchant, api_key)

    async def get(self, merchant_id: str) -> Merchant | None:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT merchant_id, name, fee_percentage, confirmation_override,"
                " underpaid_tolerance FROM merchants WHERE merchant_id = %s",
                (merchant_id,),
            )
            row = await cur.fetchone()
        return None if row is None else Merchant(*row)

    async def revoke_keys(self, merchant_id: str) -> int:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "UPDATE api_keys SET revoked_at = now()"
                " WHERE merchant_id = %s AND revoked_at IS NULL",
                (merchant_id,),
            )
            return int(cur.rowcount)


_ACCOUNT_COLUMNS: Final = (
    "merchant_id, name, fee_percentage, confirmation_override, underpaid_tolerance, created_at,"
    " suspended_at"
)
_CHANGEABLE: Final = ("fee_percentage", "confirmation_override", "underpaid_tolerance")


def account_from_row(row: Sequence[Any]) -> MerchantAccount:
    return MerchantAccount(merchant=Merchant(*row[:5]), created_at=row[5], suspended_at=row[6])


class PostgresMerchantAccounts:
    """``MerchantAccounts``: merchants as the platform admin sees and changes them.

    Values arrive checked (app/services/admin.py); the table's constraints are the last word.
    """

    def __init__(self, pool: Connections) -> None:
        self._pool = pool

    async def account(self, merchant_id: str) -> MerchantAccount | None:
        return await self._one(
            f"SELECT {_ACCOUNT_COLUMNS} FROM merchants WHERE merchant_id = %s", (merchant_id,)
        )

    async def accounts(self, *, after: str | None, limit: int) -> list[MerchantAccount]:
        """Up to ``limit`` merchants by id, from just after ``after`` (keyset pagination: a
        merchant created meanwhile neither shifts nor repeats a page)."""
        if limit <= 0:
            return []
        where, values = ("", ()) if after is None else (" WHERE merchant_id > %s", (after,))
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                f"SELECT {_ACCOUNT_COLUMNS} FROM merchants{where} ORDER BY merchant_id LIMIT %s",
                (*values, limit),
            )
            rows = await cur.fetchall()
        return [account_from_row(row) for row in rows]

    async def update(
        self, merchant_id: str, changes: Mapping[str, Decimal | int | None]
    ) -> MerchantAccount | None:
        """Set ``fee_percentage``, ``confirmation_override``, ``underpaid_tolerance`` (None
        clears the override or the tolerance)."""
        unknown = sorted(set(changes) - set(_CHANGEABLE))
        if unknown:
            raise ValueError(f"a merchant's {', '.join(unknown)} cannot be changed here")
        columns = [column for column in _CHANGEABLE if column in changes]
        if not columns:
            return await self.account(merchant_id)
        return await self._one(
            f"UPDATE merchants SET {', '.join(f'{column} = %s' for column in columns)}"
            f" WHERE merchant_id = %s RETURNING {_ACCOUNT_COLUMNS}",
            (*(changes[column] for column in columns), merchant_id),
        )

    async def set_suspended(self, merchant_id: str, suspended: bool) -> MerchantAccount | None:
        """Suspend (keeping the first suspension's time if it is suspended already) or lift it."""
        return await self._one(
            "UPDATE merchants SET suspended_at ="
            " CASE WHEN %s THEN coalesce(suspended_at, now()) ELSE NULL END"
            f" WHERE merchant_id = %s RETURNING {_ACCOUNT_COLUMNS}",
            (suspended, merchant_id),
        )

    async def _one(self, sql: str, values: Sequence[Any]) -> MerchantAccount | None:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(sql, values)
            row = await cur.fetchone()
        return None if row is None else account_from_row(row)
