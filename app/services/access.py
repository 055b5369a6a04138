"""Who is asking, and the merchants' API keys.

``AccessControl.authenticate`` turns an ``Authorization: Bearer …`` credential into a
``Principal`` (app/domain/access.py): an API key (``ck_…``, checked against its HMAC) or a user's
access token (a JWT; the user and their merchant are read again, so a disabled user, a changed
role or a suspended merchant count at once). Checked keys, users and merchants are cached for
``CACHE_SECONDS``; every change is announced on Redis (``AccessChanges``) and each worker drops
what it cached at once, so a revoked key is refused everywhere within the pub/sub's delay
(milliseconds). While a worker is not sure to hear those announcements (Redis down, the
subscription being re-established) it caches nothing and asks PostgreSQL every time.

``ApiKeys`` is what a merchant (or the operator, on the CLI) does with keys: create one with a
name, scopes and an optional expiry (the secret is shown once), list, revoke, and roll (a new
secret; the old one keeps working for a grace period, 24 h unless told).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final, Generic, TypeVar

from app.domain.access import ROLE_SCOPES, Principal, Role, Scope
from app.domain.errors import (
    CheckoutError,
    Forbidden,
    InvalidExpiry,
    NotFound,
    RuleViolation,
    Unauthenticated,
)
from app.domain.fields import one_line
from app.services.credentials import API_KEY, SecretDigests, new_credential, parse_credential
from app.services.ports import (
    AccessChanges,
    AccessTokens,
    ApiKeyRecord,
    ApiKeyStore,
    KeyCredentials,
    MerchantAccount,
    MerchantAccounts,
    UserRecord,
    UserStore,
)

logger = logging.getLogger(__name__)
V = TypeVar("V")

CACHE_SECONDS: Final = 30.0
_CACHE_MAX: Final = 10_000
MAX_KEYS_PER_MERCHANT: Final = 100
MAX_KEY_NAME: Final = 100
DEFAULT_ROLL_GRACE: Final = timedelta(hours=24)
MAX_ROLL_GRACE: Final = timedelta(days=30)
MAX_KEY_LIFETIME: Final = timedelta(days=3650)


class InvalidApiKey(Unauthenticated):
    """An API key that is unknown, malformed, revoked or expired."""

    code = "invalid_api_key"


class AccountDisabled(Unauthenticated):
    """A user whose account was disabled (or removed from the merchant's team)."""

    code = "account_disabled"


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"


class ApiKeyLimitReached(RuleViolation):
    code = "api_key_limit_reached"


class EmailNotVerified(Forbidden):
    """A signed-up owner creates API keys once their email is verified (app/services/signup.py)."""

    code = "email_not_verified"


class InvalidKeyName(CheckoutError):
    code = "parameter_invalid"


def key_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_KEY_NAME:
        raise InvalidKeyName(f"name must be 1 to {MAX_KEY_NAME} characters", param="name")
    try:
        return one_line(value.strip())
    except ValueError as exc:
        raise InvalidKeyName(f"name {exc}", param="name") from None


def operator(merchant: MerchantAccount) -> Principal:
    """The operator on the CLI, acting for ``merchant`` with every scope."""
    return Principal(
        kind="operator",
        actor_id="operator",
        merchant=merchant.merchant,
        role=None,
        scopes=ROLE_SCOPES[Role.OWNER],
    )


class _Cache(Generic[V]):
    """A small expiring map; cleared whole when full (a flood of ids must not grow it)."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, V]] = {}

    def get(self, key: str) -> V | None:
        held = self._items.get(key)
        if held is None or held[0] <= time.monotonic():
            return None
        return held[1]

    def put(self, key: str, value: V) -> None:
        if len(self._items) >= _CACHE_MAX:
            self._items.clear()
        self._items[key] = (time.monotonic() + CACHE_SECONDS, value)

    def drop(self, key: str) -> None:
        self._items.pop(key, None)

    def drop_where(self, matches: object) -> None:
        for key, (_, value) in list(self._items.items()):
            if getattr(value, "merchant_id", None) == matches:
                del self._items[key]

    def clear(self) -> None:
        self._items.clear()


@dataclass(frozen=True)
class _CachedKey:
    credentials: KeyCredentials

    @property
    def merchant_id(self) -> str:
        return self.credentials.key.merchant_id


@dataclass(frozen=True)
class _CachedUser:
    user: UserRecord
    account: MerchantAccount | None

    @property
    def merchant_id(self) -> str | None:
        return self.user.merchant_id


class AccessControl:
    def __init__(
        self,
        keys: ApiKeyStore,
        users: UserStore,
        merchants: MerchantAccounts,
        tokens: AccessTokens,
        digests: SecretDigests,
        changes: AccessChanges,
    ) -> None:
        self._keys = keys
        self._users = users
        self._merchants = merchants
        self._tokens = tokens
        self._digests = digests
        self._changes = changes
        self._key_cache: _Cache[_CachedKey] = _Cache()
        self._user_cache: _Cache[_CachedUser] = _Cache()
        # Counts the changes heard: a read that began before a change and ended after it may
        # hold what the change undid, so it is used but not cached.
        self._generation = 0

    def _may_cache(self, generation: int) -> bool:
        return self._changes.healthy and generation == self._generation

    # --- who is asking ------------------------------------------------------------------------

    async def authenticate(self, credential: str) -> Principal:
        if credential.startswith(API_KEY):
            return await self._api_key(credential)
        if credential.count(".") == 2:
            return await self._access_token(credential)
        raise InvalidApiKey(
            "the credential is neither an API key (ck_…) nor an access token (a JWT)"
        )

    async def _api_key(self, text: str) -> Principal:
        parsed = parse_credential(API_KEY, text)
        if parsed is None:
            raise InvalidApiKey("the API key is malformed")
        cached = self._key_cache.get(parsed.credential_id) if self._changes.healthy else None
        credentials = cached.credentials if cached else None
        if credentials is None:
            generation = self._generation
            credentials = await self._keys.credentials(parsed.credential_id)
            if credentials is not None and self._may_cache(generation):
                self._key_cache.put(parsed.credential_id, _CachedKey(credentials))
        now = datetime.now(UTC)
        if credentials is None or not self._secret_holds(credentials, parsed.secret, now):
            raise InvalidApiKey("the API key is not valid (unknown, malformed or revoked)")
        key = credentials.key
        if key.expires_at is not None and key.expires_at <= now:
            raise InvalidApiKey(f"the API key expired at {key.expires_at.isoformat()}")
        return Principal(
            kind="api_key",
            actor_id=key.key_id,
            merchant=credentials.merchant,
            role=None,
            scopes=key.scopes,
            suspended=credentials.suspended,
        )

    def _secret_holds(self, credentials: KeyCredentials, secret: str, now: datetime) -> bool:
        if self._digests.matches(secret, credentials.secret_hmac):
            return True
        grace = credentials.key.previous_valid_until
        return (
            grace is not None
            and grace > now
            and self._digests.matches(secret, credentials.previous_secret_hmac)
        )

    async def _access_token(self, token: str) -> Principal:
        claims = self._tokens.verify_access(token)  # raises Unauthenticated (InvalidToken)
        return await self.user_principal(claims.user_id, claims.merchant_id)

    async def user_principal(self, user_id: str, merchant_id: str | None) -> Principal:
        """The user as a principal, with their role now; ``AccountDisabled`` when they are
        disabled or no longer ``merchant_id``'s (the access token's, or the Telegram chat's)."""
        cached = self._user_cache.get(user_id) if self._changes.healthy else None
        if cached is None:
            generation = self._generation
            user = await self._users.user(user_id)
            account = None
            if user is not None and user.merchant_id is not None:
                account = await self._merchants.account(user.merchant_id)
            cached = _CachedUser(user, account) if user is not None else None
            if cached is not None and self._may_cache(generation):
                self._user_cache.put(user_id, cached)
        if cached is None or cached.user.disabled_at is not None:
            raise AccountDisabled("this account is disabled; ask the merchant's owner")
        user, account = cached.user, cached.account
        if user.merchant_id != merchant_id:
            raise AccountDisabled("this account moved; sign in again")
        return Principal(
            kind="user",
            actor_id=user.user_id,
            merchant=None if account is None else account.merchant,
            role=user.role,  # the role now, not the one the token was issued with
            scopes=ROLE_SCOPES[user.role],
            suspended=account is not None and account.suspended_at is not None,
            email_verified=user.email_verified_at is not None,
        )

    # --- news from the other workers ----------------------------------------------------------

    def forget(self, subject: str) -> None:
        """Drop what is cached about ``subject`` (``key:<id>``, ``user:<id>``,
        ``merchant:<id>``, or ``*``), announced by whichever worker changed it."""
        self._generation += 1
        kind, _, ident = subject.partition(":")
        if kind == "key":
            self._key_cache.drop(ident)
        elif kind == "user":
            self._user_cache.drop(ident)
        elif kind == "merchant":
            self._key_cache.drop_where(ident)
            self._user_cache.drop_where(ident)
        elif kind == "webhooks":
            return  # news for the webhook subscribers' cache (app/services/webhook_subscribers.py)
        else:
            self.forget_everything()

    def forget_everything(self) -> None:
        self._generation += 1
        self._key_cache.clear()
        self._user_cache.clear()

    async def changed(self, subject: str) -> None:
        """Forget ``subject`` here, and tell every other worker to."""
        self.forget(subject)
        await self._changes.announce(subject)


class ApiKeys:
    def __init__(self, store: ApiKeyStore, digests: SecretDigests, access: AccessControl) -> None:
        self._store = store
        self._digests = digests
        self._access = access

    async def create(
        self,
        principal: Principal,
        *,
        name: object,
        scopes: Iterable[Scope],
        expires_at: datetime | None = None,
    ) -> tuple[ApiKeyRecord, str]:
        """A new key and its secret in clear, shown this once."""
        merchant = principal.require(Scope.KEYS_WRITE)
        if not principal.email_verified:
            raise EmailNotVerified(
                "confirm your email address first: follow the link we sent you "
                "(or ask for a new one with POST /api/v1/signup/resend)"
            )
        scopes = frozenset(scopes)
        principal.may_grant(scopes)
        now = datetime.now(UTC)
        if expires_at is not None and not now < expires_at <= now + MAX_KEY_LIFETIME:
            raise InvalidExpiry(
                "expires_at must be in the future and within 10 years", param="expires_at"
            )
        if len(await self._live_keys(merchant.merchant_id, now)) >= MAX_KEYS_PER_MERCHANT:
            raise ApiKeyLimitReached(
                f"a merchant can have at most {MAX_KEYS_PER_MERCHANT} keys; revoke unused ones"
            )
        credential = new_credential(API_KEY)
        record = ApiKeyRecord(
            key_id=credential.credential_id,
            merchant_id=merchant.merchant_id,
            name=key_name(name),
            scopes=scopes,
            created_at=now,
            expires_at=expires_at,
            created_by=principal.actor_id,
        )
        await self._store.add(record, self._digests.of(credential.secret))
        return record, str(credential)

    async def _live_keys(self, merchant_id: str, now: datetime) -> list[ApiKeyRecord]:
        return [
            key
            for key in await self._store.keys(merchant_id)
            if key.revoked_at is None and (key.expires_at is None or key.expires_at > now)
        ]

    async def keys(self, principal: Principal) -> list[ApiKeyRecord]:
        merchant = principal.require(Scope.KEYS_WRITE)
        return await self._store.keys(merchant.merchant_id)

    async def revoke(self, principal: Principal, key_id: str) -> ApiKeyRecord:
        merchant = principal.require(Scope.KEYS_WRITE)
        current = await self._key(merchant.merchant_id, key_id)
        # A narrow key must not switch off a stronger one (a leaked one could stop production).
        principal.may_grant(current.scopes)
        revoked = await self._store.revoke(merchant.merchant_id, key_id)
        if revoked is None:
            raise ApiKeyNotFound(f"no API key {key_id}", param="key_id")
        await self._access.changed(f"key:{key_id}")
        return revoked

    async def _key(self, merchant_id: str, key_id: str) -> ApiKeyRecord:
        """The merchant's unrevoked key ``key_id``."""
        for key in await self._store.keys(merchant_id):
            if key.key_id == key_id and key.revoked_at is None:
                return key
        raise ApiKeyNotFound(f"no API key {key_id}", param="key_id")

    async def roll(
        self, principal: Principal, key_id: str, *, grace: timedelta = DEFAULT_ROLL_GRACE
    ) -> tuple[ApiKeyRecord, str]:
        """A new secret for the key; the old one works ``grace`` longer (0: stops at once)."""
        merchant = principal.require(Scope.KEYS_WRITE)
        if not timedelta(0) <= grace <= MAX_ROLL_GRACE:
            raise InvalidExpiry(
                "grace_period must be from 0 to 2592000 seconds (30 days)", param="grace_period"
            )
        current = await self._key(merchant.merchant_id, key_id)
        # Rolling hands out the key's secret: only to whoever could have made such a key.
        principal.may_grant(current.scopes)
        credential = replace(new_credential(API_KEY), credential_id=key_id)
        rolled = await self._store.roll(
            merchant.merchant_id,
            key_id,
            self._digests.of(credential.secret),
            datetime.now(UTC) + grace,
        )
        if rolled is None:
            raise ApiKeyNotFound(f"no API key {key_id}", param="key_id")
        await self._access.changed(f"key:{key_id}")
        return rolled, str(credential)
