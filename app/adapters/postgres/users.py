"""Merchant users, platform admins, invitations and refresh tokens in PostgreSQL
(migrations/0009_access.sql).

Passwords arrive hashed (argon2id) and credentials' secrets as HMACs; what they mean is
app/services/users.py's. What must happen once happens in one statement or one transaction here,
so two requests racing with the same refresh token or invitation cannot both win.
"""

# SQL built from constant column lists and conditions; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

import psycopg2.errors

from app.adapters.postgres.pool import Connections, SqlStore
from app.domain.access import LastOwner, Role
from app.domain.errors import AlreadyExists
from app.services.ports import Invitation, RefreshRecord, UserRecord

_USER_COLUMNS: Final = (
    "user_id, email, merchant_id, role, created_at, password_hash, disabled_at, created_by,"
    " email_verified_at"
)
_INVITATION_COLUMNS: Final = "invitation_id, user_id, secret_hmac, expires_at, accepted_at"
_REFRESH_COLUMNS: Final = (
    "token_id, family_id, user_id, secret_hmac, expires_at, replaced_at, revoked_at"
)


def user_from_row(row: Sequence[Any]) -> UserRecord:
    (user_id, email, merchant_id, role, created_at, password_hash, disabled_at,
     created_by, email_verified_at) = row  # fmt: skip
    return UserRecord(
        user_id=user_id,
        email=email,
        merchant_id=merchant_id,
        role=Role(role),
        created_at=created_at,
        password_hash=password_hash,
        disabled_at=disabled_at,
        created_by=created_by,
        email_verified_at=email_verified_at,
    )


def invitation_from_row(row: Sequence[Any]) -> Invitation:
    invitation_id, user_id, secret_hmac, expires_at, accepted_at = row
    return Invitation(invitation_id, user_id, bytes(secret_hmac), expires_at, accepted_at)


def refresh_from_row(row: Sequence[Any]) -> RefreshRecord:
    token_id, family_id, user_id, secret_hmac, expires_at, replaced_at, revoked_at = row
    return RefreshRecord(
        token_id, family_id, user_id, bytes(secret_hmac), expires_at, replaced_at, revoked_at
    )


async def insert_user(cur: Any, user: UserRecord) -> None:
    """``AlreadyExists`` when the email (unique) has an account already."""
    try:
        await cur.execute(
            "INSERT INTO users (user_id, email, merchant_id, role, created_at, password_hash,"
            " disabled_at, created_by, email_verified_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (user.user_id, user.email, user.merchant_id, user.role.value, user.created_at,
             user.password_hash, user.disabled_at, user.created_by, user.email_verified_at),
        )  # fmt: skip
    except psycopg2.errors.UniqueViolation:
        raise AlreadyExists(f"{user.email} has an account already", param="email") from None


class PostgresUsers(SqlStore):
    """``UserStore`` over the worker's PostgreSQL pool."""

    def __init__(self, pool: Connections) -> None:
        super().__init__(pool)

    # --- users --------------------------------------------------------------------------------

    async def add_user(self, user: UserRecord) -> None:
        """Raises ``AlreadyExists`` when the email (unique) has an account already.

        The unique index decides, not a read before the write: two sign-ups racing for one
        email cannot both succeed.
        """
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await insert_user(cur, user)

    async def user(self, user_id: str) -> UserRecord | None:
        row = await self._fetchone(
            f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = %s", (user_id,)
        )
        return None if row is None else user_from_row(row)

    async def user_by_email(self, email: str) -> UserRecord | None:
        """Emails are stored lower-case (the table checks it); ``email`` is matched as given."""
        row = await self._fetchone(f"SELECT {_USER_COLUMNS} FROM users WHERE email = %s", (email,))
        return None if row is None else user_from_row(row)

    async def users(self, merchant_id: str) -> list[UserRecord]:
        """The merchant's users, disabled ones too, oldest first."""
        rows = await self._fetchall(
            f"SELECT {_USER_COLUMNS} FROM users WHERE merchant_id = %s"
            " ORDER BY created_at, user_id",
            (merchant_id,),
        )
        return [user_from_row(row) for row in rows]

    async def set_password(self, user_id: str, password_hash: str) -> None:
        await self._execute(
            "UPDATE users SET password_hash = %s WHERE user_id = %s", (password_hash, user_id)
        )

    async def set_role(self, merchant_id: str, user_id: str, role: Role) -> UserRecord | None:
        """The user with their new role; None unless an enabled user of the merchant;
        ``LastOwner`` if no other owner who can sign in would be left."""
        return await self._change_member(
            merchant_id,
            user_id,
            leaves_owners=role is not Role.OWNER,
            sql="UPDATE users SET role = %s"
            " WHERE user_id = %s AND merchant_id = %s AND disabled_at IS NULL"
            f" RETURNING {_USER_COLUMNS}",
            values=(role.value, user_id, merchant_id),
        )

    async def disable(self, merchant_id: str, user_id: str) -> UserRecord | None:
        """The user as disabled now; None unless an enabled user of the merchant;
        ``LastOwner`` if no other owner who can sign in would be left."""
        return await self._change_member(
            merchant_id,
            user_id,
            leaves_owners=True,
            sql="UPDATE users SET disabled_at = now()"
            " WHERE user_id = %s AND merchant_id = %s AND disabled_at IS NULL"
            f" RETURNING {_USER_COLUMNS}",
            values=(user_id, merchant_id),
        )

    async def _change_member(
        self,
        merchant_id: str,
        user_id: str,
        *,
        leaves_owners: bool,
        sql: str,
        values: Sequence[Any],
    ) -> UserRecord | None:
        async with self._transaction() as cur:
            # The merchant's owners, locked: two owners demoting each other at once are served
            # one after the other, and the second sees the first one's change.
            await cur.execute(
                "SELECT user_id, password_hash IS NOT NULL AND disabled_at IS NULL FROM users"
                " WHERE merchant_id = %s AND role = 'owner' ORDER BY user_id FOR UPDATE",
                (merchant_id,),
            )
            owners = {row[0]: row[1] for row in await cur.fetchall()}
            others_able = any(able for owner, able in owners.items() if owner != user_id)
            if leaves_owners and user_id in owners and not others_able:
                raise LastOwner(
                    "a merchant keeps at least one owner who can sign in; "
                    "make someone else owner first"
                )
            await cur.execute(sql, values)
            row = await cur.fetchone()
        return None if row is None else user_from_row(row)

    # --- invitations --------------------------------------------------------------------------

    async def add_invitation(self, invitation: Invitation) -> None:
        await self._execute(
            "INSERT INTO invitations (invitation_id, user_id, secret_hmac, expires_at,"
            " accepted_at) VALUES (%s, %s, %s, %s, %s)",
            (invitation.invitation_id, invitation.user_id, invitation.secret_hmac,
             invitation.expires_at, invitation.accepted_at),
        )  # fmt: skip

    async def invitation(self, invitation_id: str) -> Invitation | None:
        row = await self._fetchone(
            f"SELECT {_INVITATION_COLUMNS} FROM invitations WHERE invitation_id = %s",
            (invitation_id,),
        )
        return None if row is None else invitation_from_row(row)

    async def accept_invitation(self, invitation_id: str, password_hash: str) -> bool:
        """Set the invitee's password, once: False if the invitation is used, expired or unknown.

        Marking the invitation and setting the password are one transaction, and the mark is a
        conditional update: of two acceptances at once, the second waits for the first's row
        lock, then finds the invitation accepted and changes nothing.
        """
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("BEGIN")
            try:
                await cur.execute(
                    "UPDATE invitations SET accepted_at = now()"
                    " WHERE invitation_id = %s AND accepted_at IS NULL AND expires_at > now()"
                    " RETURNING user_id",
                    (invitation_id,),
                )
                row = await cur.fetchone()
                if row is not None:
                    # The invitation reached its owner: their email counts as verified.
                    await cur.execute(
                        "UPDATE users SET password_hash = %s,"
                        " email_verified_at = coalesce(email_verified_at, now())"
                        " WHERE user_id = %s",
                        (password_hash, row[0]),
                    )
            except BaseException:
                await cur.execute("ROLLBACK")
                raise
            await cur.execute("COMMIT")
        return row is not None

    # --- refresh tokens -----------------------------------------------------------------------

    async def add_refresh(self, token: RefreshRecord) -> None:
        await self._execute(
            "INSERT INTO refresh_tokens (token_id, family_id, user_id, secret_hmac, expires_at,"
            " replaced_at, revoked_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (token.token_id, token.family_id, token.user_id, token.secret_hmac, token.expires_at,
             token.replaced_at, token.revoked_at),
        )  # fmt: skip

    async def refresh_token(self, token_id: str) -> RefreshRecord | None:
        row = await self._fetchone(
            f"SELECT {_REFRESH_COLUMNS}, EXISTS (SELECT 1 FROM refresh_tokens f"
            "   WHERE f.family_id = t.family_id AND f.revoked_at IS NOT NULL)"
            " FROM refresh_tokens t WHERE token_id = %s",
            (token_id,),
        )
        if row is None:
            return None
        # A token inserted while its family was being revoked escapes that UPDATE; its family's
        # older tokens do not, so "any token of the family revoked" is what counts.
        return replace(refresh_from_row(row[:-1]), family_revoked=bool(row[-1]))

    async def replace_refresh(self, token_id: str) -> bool:
        """Mark the token used, once: one conditional update, so of two refreshes racing with
        the same token exactly one gets True."""
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "UPDATE refresh_tokens SET replaced_at = now()"
                " WHERE token_id = %s AND replaced_at IS NULL AND revoked_at IS NULL",
                (token_id,),
            )
            return bool(cur.rowcount == 1)

    async def revoke_family(self, family_id: str) -> None:
        await self._execute(
            "UPDATE refresh_tokens SET revoked_at = now()"
            " WHERE family_id = %s AND revoked_at IS NULL",
            (family_id,),
        )

    async def revoke_user_tokens(self, user_id: str) -> None:
        await self._execute(
            "UPDATE refresh_tokens SET revoked_at = now()"
            " WHERE user_id = %s AND revoked_at IS NULL",
            (user_id,),
        )
