"""Sign-ups, email verifications and sign-up invitations in PostgreSQL
(migrations/0014_signup.sql). What must happen once is one conditional update, inside the
transaction that depends on it."""

# SQL built from constant column lists; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from app.adapters.postgres.pool import Connections, SqlStore
from app.adapters.postgres.users import insert_user
from app.services.ports import OneTimeSecret, SignupRecord
from app.services.signup import InvalidSignupInvitation

_VERIFICATION: Final = "verification_id, secret_hmac, expires_at, used_at, user_id"
_INVITATION: Final = "invitation_id, secret_hmac, expires_at, used_at"


def _secret(row: Sequence[Any] | None) -> OneTimeSecret | None:
    if row is None:
        return None
    return OneTimeSecret(row[0], bytes(row[1]), row[2], row[3], *(row[4:5] or [None]))


class PostgresSignups(SqlStore):
    """``SignupStore`` over the worker's PostgreSQL pool."""

    def __init__(self, pool: Connections) -> None:
        super().__init__(pool)

    async def register(self, signup: SignupRecord) -> None:
        merchant, verification = signup.merchant, signup.verification
        async with self._transaction() as cur:
            if signup.invitation_id is not None:
                # Used up in this transaction: two sign-ups with one code, one wins.
                await cur.execute(
                    "UPDATE signup_invitations SET used_at = now()"
                    " WHERE invitation_id = %s AND used_at IS NULL AND expires_at > now()"
                    " RETURNING invitation_id",
                    (signup.invitation_id,),
                )
                if await cur.fetchone() is None:
                    raise InvalidSignupInvitation("the invitation was used already or expired")
            await cur.execute(
                "INSERT INTO merchants (merchant_id, name, fee_percentage, confirmation_override)"
                " VALUES (%s, %s, %s, %s)",
                (
                    merchant.merchant_id,
                    merchant.name,
                    merchant.fee_percentage,
                    merchant.confirmation_override,
                ),
            )
            if signup.invitation_id is not None:
                await cur.execute(
                    "UPDATE signup_invitations SET merchant_id = %s WHERE invitation_id = %s",
                    (merchant.merchant_id, signup.invitation_id),
                )
            await insert_user(cur, signup.owner)
            await _insert_verification(cur, verification)

    async def add_verification(self, verification: OneTimeSecret) -> None:
        async with self._transaction() as cur:
            await _insert_verification(cur, verification)

    async def verification(self, verification_id: str) -> OneTimeSecret | None:
        return _secret(
            await self._fetchone(
                f"SELECT {_VERIFICATION} FROM email_verifications WHERE verification_id = %s",
                (verification_id,),
            )
        )

    async def use_verification(self, verification_id: str) -> str | None:
        async with self._transaction() as cur:
            await cur.execute(
                "UPDATE email_verifications SET used_at = now()"
                " WHERE verification_id = %s AND used_at IS NULL AND expires_at > now()"
                " RETURNING user_id",
                (verification_id,),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            await cur.execute(
                "UPDATE users SET email_verified_at = coalesce(email_verified_at, now())"
                " WHERE user_id = %s",
                (row[0],),
            )
        return str(row[0])

    async def add_signup_invitation(self, invitation: OneTimeSecret, note: str | None) -> None:
        await self._execute(
            "INSERT INTO signup_invitations (invitation_id, secret_hmac, note, expires_at)"
            " VALUES (%s, %s, %s, %s)",
            (invitation.secret_id, invitation.secret_hmac, note, invitation.expires_at),
        )

    async def signup_invitation(self, invitation_id: str) -> OneTimeSecret | None:
        return _secret(
            await self._fetchone(
                f"SELECT {_INVITATION} FROM signup_invitations WHERE invitation_id = %s",
                (invitation_id,),
            )
        )


async def _insert_verification(cur: Any, verification: OneTimeSecret) -> None:
    await cur.execute(
        "INSERT INTO email_verifications (verification_id, user_id, secret_hmac, expires_at)"
        " VALUES (%s, %s, %s, %s)",
        (
            verification.secret_id,
            verification.user_id,
            verification.secret_hmac,
            verification.expires_at,
        ),
    )
