"""Merchant users and platform admins: sign-in, sessions, invitations, roles.

**Sign-in** (``login``) checks an email and password (argon2id) and opens a session: a JWT access
token (15 minutes) and a refresh token. Failed sign-ins are limited per account and per client
address; a locked account or address is told when to retry, and an unknown email costs the same
time as a wrong password, so neither the answer nor its delay tells which emails have accounts.

**Sessions** rotate: each ``refresh`` replaces the refresh token with a new one of the same
family. A replaced token presented again means someone kept a copy: the whole family is revoked,
and both holders must sign in again. ``logout`` revokes the family.

**The team**: an owner invites users with a role (the invitation is a one-time credential the
owner passes on; the invitee chooses their password with it), changes roles and removes users.
A merchant always keeps one owner. The CLI creates users and admins directly
(``checkout create-user``, ``checkout create-admin``).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from app.domain.access import MERCHANT_ROLES, ROLE_SCOPES, Principal, Role, Scope
from app.domain.errors import (
    AlreadyExists,
    CheckoutError,
    InvalidCredentials,
    InvalidRefreshToken,
    NotFound,
    TooManyAttempts,
)
from app.services.access import AccessControl, AccountDisabled
from app.services.credentials import (
    INVITATION,
    REFRESH_TOKEN,
    SecretDigests,
    new_credential,
    parse_credential,
)
from app.services.ports import (
    AccessTokens,
    Invitation,
    MerchantAccounts,
    PasswordHashing,
    RefreshRecord,
    UserRecord,
    UserStore,
)
from app.services.rate_limits import Limiter, Rate

REFRESH_LIFETIME: Final = timedelta(days=30)
INVITATION_LIFETIME: Final = timedelta(days=7)
MAX_EMAIL: Final = 254
# Deliberately loose (RFC 5322 is not a regular language): one @, a dot in the domain, no space.
_EMAIL: Final = re.compile(r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+")


class InvalidEmail(CheckoutError):
    code = "email_invalid"


class InvalidRole(CheckoutError):
    code = "role_invalid"


class UserNotFound(NotFound):
    code = "user_not_found"


class InvalidInvitation(InvalidRefreshToken):
    code = "invalid_invitation"


def parse_email(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_EMAIL or not _EMAIL.fullmatch(value.strip()):
        raise InvalidEmail("email must be an email address", param="email")
    return value.strip().lower()


def parse_role(value: object, *, allowed: tuple[Role, ...] = MERCHANT_ROLES) -> Role:
    names = ", ".join(role.value for role in allowed)
    if not isinstance(value, str) or value not in {role.value for role in allowed}:
        raise InvalidRole(f"role must be one of {names}", param="role")
    return Role(value)


@dataclass(frozen=True)
class LoginLimits:
    """Failed sign-ins allowed per account and per client address (GCRA: the count at once,
    then one per period/count)."""

    per_account: Rate = field(default_factory=lambda: Rate(10, 3600.0))
    per_address: Rate = field(default_factory=lambda: Rate(50, 3600.0))


@dataclass(frozen=True)
class Session:
    user: UserRecord
    access_token: str
    expires_in: int
    refresh_token: str


class UserAccounts:
    def __init__(
        self,
        users: UserStore,
        merchants: MerchantAccounts,
        passwords: PasswordHashing,
        tokens: AccessTokens,
        digests: SecretDigests,
        access: AccessControl,
        limiter: Limiter,
        limits: LoginLimits | None = None,
    ) -> None:
        self._users = users
        self._merchants = merchants
        self._passwords = passwords
        self._tokens = tokens
        self._digests = digests
        self._access = access
        self._limiter = limiter
        self._limits = limits or LoginLimits()

    # --- sessions -----------------------------------------------------------------------------

    async def login(self, email: object, password: object, *, client_address: str) -> Session:
        # Every attempt is charged before the password is checked and given back if it was
        # right: parallel guesses cannot all slip past the limit while argon2 works.
        address_key = f"login:ip:{client_address}"
        await self._charge(address_key, self._limits.per_address, "your address")
        try:
            address = parse_email(email)
        except InvalidEmail:
            raise InvalidCredentials("the email or the password is wrong") from None
        if not isinstance(password, str):
            raise InvalidCredentials("the email or the password is wrong")
        account_key = f"login:account:{address}"
        try:
            await self._charge(account_key, self._limits.per_account, "this account")
        except TooManyAttempts:
            await self._limiter.refund(address_key, self._limits.per_address)
            raise
        user = await self._users.user_by_email(address)
        stored = user.password_hash if user is not None else None
        # An unknown email (or an invitee without a password) costs a verification as well.
        matches = await self._passwords.verify(stored or self._passwords.dummy_hash, password)
        if user is None or stored is None or not matches or user.disabled_at is not None:
            raise InvalidCredentials("the email or the password is wrong")
        await self._limiter.refund(account_key, self._limits.per_account)
        await self._limiter.refund(address_key, self._limits.per_address)
        if self._passwords.needs_rehash(stored):
            await self._users.set_password(user.user_id, await self._passwords.hash(password))
        return await self._open_session(user, family_id=f"fam_{secrets.token_hex(8)}")

    async def _charge(self, key: str, rate: Rate, whose: str) -> None:
        decision = await self._limiter.hit(key, rate)
        if not decision.allowed:
            raise TooManyAttempts(
                f"too many failed sign-ins for {whose}; retry in "
                f"{max(1, round(decision.retry_after))} s",
                retry_after=decision.retry_after,
            )

    async def _open_session(self, user: UserRecord, *, family_id: str) -> Session:
        access_token, _ = self._tokens.issue_access(user.user_id, user.merchant_id, user.role)
        credential = new_credential(REFRESH_TOKEN)
        await self._users.add_refresh(
            RefreshRecord(
                token_id=credential.credential_id,
                family_id=family_id,
                user_id=user.user_id,
                secret_hmac=self._digests.of(credential.secret),
                expires_at=datetime.now(UTC) + REFRESH_LIFETIME,
            )
        )
        return Session(
            user=user,
            access_token=access_token,
            expires_in=int(self._tokens.access_ttl.total_seconds()),
            refresh_token=str(credential),
        )

    async def _held_refresh(self, token: object) -> RefreshRecord:
        parsed = parse_credential(REFRESH_TOKEN, token) if isinstance(token, str) else None
        record = None if parsed is None else await self._users.refresh_token(parsed.credential_id)
        if (
            parsed is None
            or record is None
            or not self._digests.matches(parsed.secret, record.secret_hmac)
        ):
            raise InvalidRefreshToken("the refresh token is not valid; sign in again")
        return record

    async def refresh(self, token: object) -> Session:
        record = await self._held_refresh(token)
        if record.replaced_at is not None:
            # Used before: whoever holds the newer one and whoever kept this one cannot be told
            # apart. End the session for both.
            await self._users.revoke_family(record.family_id)
            raise InvalidRefreshToken("the refresh token was used already; sign in again")
        if (
            record.revoked_at is not None
            or record.family_revoked
            or record.expires_at <= datetime.now(UTC)
        ):
            raise InvalidRefreshToken("the session has ended; sign in again")
        if not await self._users.replace_refresh(record.token_id):
            await self._users.revoke_family(record.family_id)
            raise InvalidRefreshToken("the refresh token was used already; sign in again")
        user = await self._users.user(record.user_id)
        if user is None or user.disabled_at is not None:
            raise AccountDisabled("this account is disabled; ask the merchant's owner")
        return await self._open_session(user, family_id=record.family_id)

    async def logout(self, token: object) -> None:
        record = await self._held_refresh(token)
        await self._users.revoke_family(record.family_id)

    # --- the team -----------------------------------------------------------------------------

    async def team(self, principal: Principal) -> list[UserRecord]:
        merchant = principal.require(Scope.USERS_WRITE)
        return await self._users.users(merchant.merchant_id)

    async def invite(
        self, principal: Principal, *, email: object, role: object
    ) -> tuple[UserRecord, str]:
        """A user without a password yet, and the one-time invitation to pass on."""
        merchant = principal.require(Scope.USERS_WRITE)
        chosen = parse_role(role)
        principal.may_grant(ROLE_SCOPES[chosen])  # a users:write key cannot make an owner
        user = UserRecord(
            user_id=f"usr_{secrets.token_hex(10)}",
            email=parse_email(email),
            merchant_id=merchant.merchant_id,
            role=chosen,
            created_at=datetime.now(UTC),
            created_by=principal.actor_id,
        )
        await self._add(user)
        credential = new_credential(INVITATION)
        await self._users.add_invitation(
            Invitation(
                invitation_id=credential.credential_id,
                user_id=user.user_id,
                secret_hmac=self._digests.of(credential.secret),
                expires_at=datetime.now(UTC) + INVITATION_LIFETIME,
            )
        )
        return user, str(credential)

    async def accept_invitation(self, token: object, password: object) -> Session:
        parsed = parse_credential(INVITATION, token) if isinstance(token, str) else None
        invitation = None if parsed is None else await self._users.invitation(parsed.credential_id)
        if (
            parsed is None
            or invitation is None
            or not self._digests.matches(parsed.secret, invitation.secret_hmac)
            or invitation.accepted_at is not None
            or invitation.expires_at <= datetime.now(UTC)
        ):
            raise InvalidInvitation("the invitation is not valid (unknown, used or expired)")
        if not isinstance(password, str):
            raise InvalidCredentials("password must be a string", param="password")
        self._passwords.check_policy(password)
        password_hash = await self._passwords.hash(password)
        if not await self._users.accept_invitation(invitation.invitation_id, password_hash):
            raise InvalidInvitation("the invitation was used already")
        user = await self._users.user(invitation.user_id)
        if user is None or user.disabled_at is not None:
            raise AccountDisabled("this account is disabled; ask the merchant's owner")
        return await self._open_session(user, family_id=f"fam_{secrets.token_hex(8)}")

    async def set_role(self, principal: Principal, user_id: str, role: object) -> UserRecord:
        merchant = principal.require(Scope.USERS_WRITE)
        new_role = parse_role(role)
        current = await self._member(merchant.merchant_id, user_id)
        # Neither hand out nor take away more than one holds.
        principal.may_grant(ROLE_SCOPES[new_role] | ROLE_SCOPES[current.role])
        updated = await self._users.set_role(merchant.merchant_id, user_id, new_role)
        if updated is None:
            raise UserNotFound(f"no user {user_id}", param="user_id")
        await self._access.changed(f"user:{user_id}")
        return updated

    async def remove(self, principal: Principal, user_id: str) -> UserRecord:
        merchant = principal.require(Scope.USERS_WRITE)
        current = await self._member(merchant.merchant_id, user_id)
        principal.may_grant(ROLE_SCOPES[current.role])
        removed = await self._users.disable(merchant.merchant_id, user_id)
        if removed is None:
            raise UserNotFound(f"no user {user_id}", param="user_id")
        await self._users.revoke_user_tokens(user_id)
        await self._access.changed(f"user:{user_id}")
        return removed

    async def _member(self, merchant_id: str, user_id: str) -> UserRecord:
        user = await self._users.user(user_id)
        if user is None or user.merchant_id != merchant_id or user.disabled_at is not None:
            raise UserNotFound(f"no user {user_id}", param="user_id")
        return user

    # --- the operator's CLI -------------------------------------------------------------------

    async def create_user(
        self, *, email: object, password: str, role: object, merchant_id: str | None
    ) -> UserRecord:
        """A user with a password (``checkout create-user``, ``create-admin``)."""
        if merchant_id is None:
            chosen = parse_role(role, allowed=(Role.ADMIN,))
        else:
            chosen = parse_role(role)
            if await self._merchants.account(merchant_id) is None:
                raise NotFound(f"no merchant {merchant_id}", param="merchant")
        self._passwords.check_policy(password)
        user = UserRecord(
            user_id=f"usr_{secrets.token_hex(10)}",
            email=parse_email(email),
            merchant_id=merchant_id,
            role=chosen,
            created_at=datetime.now(UTC),
            password_hash=await self._passwords.hash(password),
            created_by="operator",
            email_verified_at=datetime.now(UTC),  # the operator vouches for it
        )
        await self._add(user)
        return user

    async def _add(self, user: UserRecord) -> None:
        try:
            await self._users.add_user(user)
        except AlreadyExists:
            raise AlreadyExists(f"{user.email} has an account already", param="email") from None
