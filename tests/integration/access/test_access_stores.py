"""The access stores in PostgreSQL: API keys, merchant accounts, users and sessions, the audit log.

Each test makes its own merchants (random ids and names), so the tests can run against a shared
database in any order and next to each other. The pepper is the one the workers of the test
platform use, so an upgrade of a legacy key made here is the one a worker would make.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiopg
import psycopg2
import pytest

from app.adapters.postgres.api_keys import PostgresApiKeys
from app.adapters.postgres.audit_log import MAX_ENTRIES, PostgresAuditLog
from app.adapters.postgres.merchants import PostgresMerchantAccounts, PostgresMerchantStore
from app.adapters.postgres.users import PostgresUsers
from app.domain.access import ALL_SCOPES, Role, Scope
from app.domain.errors import AlreadyExists
from app.services.credentials import (
    API_KEY,
    SecretDigests,
    legacy_digest,
    new_credential,
    parse_credential,
)
from app.services.ports import ApiKeyRecord, AuditEntry, Invitation, RefreshRecord, UserRecord
from app.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

DIGESTS = SecretDigests(Settings.from_env().api_key_pepper)


@pytest.fixture
async def pool() -> AsyncIterator[Any]:
    pool = await aiopg.create_pool(Settings.from_env().database_url, minsize=1, maxsize=4)
    try:
        yield pool
    finally:
        pool.close()
        await pool.wait_closed()


@pytest.fixture
def keys(pool: Any) -> PostgresApiKeys:
    return PostgresApiKeys(pool, DIGESTS)


@pytest.fixture
def accounts(pool: Any) -> PostgresMerchantAccounts:
    return PostgresMerchantAccounts(pool)


@pytest.fixture
def users(pool: Any) -> PostgresUsers:
    return PostgresUsers(pool)


async def new_merchant(pool: Any, merchant_id: str | None = None) -> str:
    merchant_id = merchant_id or f"mer_t{secrets.token_hex(10)}"
    await execute(
        pool,
        "INSERT INTO merchants (merchant_id, name) VALUES (%s, %s)",
        (merchant_id, f"Access shop {merchant_id}"),
    )
    return merchant_id


async def execute(pool: Any, sql: str, values: tuple[Any, ...] = ()) -> None:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(sql, values)


async def fetchone(pool: Any, sql: str, values: tuple[Any, ...] = ()) -> Any:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(sql, values)
        return await cur.fetchone()


async def new_key(
    keys: PostgresApiKeys, merchant_id: str, scopes: frozenset[Scope], **fields: Any
) -> tuple[ApiKeyRecord, str]:
    credential = new_credential(API_KEY)
    record = ApiKeyRecord(
        key_id=credential.credential_id,
        merchant_id=merchant_id,
        name=fields.pop("name", "test key"),
        scopes=scopes,
        created_at=fields.pop("created_at", datetime.now(UTC)),
        **fields,
    )
    await keys.add(record, DIGESTS.of(credential.secret))
    return record, credential.secret


async def insert_legacy_key(pool: Any, merchant_id: str) -> tuple[str, str]:
    """A key as an older worker made it: only the SHA-256 of its secret, default name and
    scopes."""
    credential = new_credential(API_KEY)
    await execute(
        pool,
        "INSERT INTO api_keys (key_id, merchant_id, secret_sha256) VALUES (%s, %s, %s)",
        (credential.credential_id, merchant_id, legacy_digest(credential.secret)),
    )
    return credential.credential_id, credential.secret


async def stored_digests(pool: Any, key_id: str) -> tuple[bytes | None, bytes | None]:
    sha, mac = await fetchone(
        pool, "SELECT secret_sha256, secret_hmac FROM api_keys WHERE key_id = %s", (key_id,)
    )
    return (None if sha is None else bytes(sha)), (None if mac is None else bytes(mac))


# --- API keys -------------------------------------------------------------------------------------


async def test_a_key_round_trips_with_its_scopes_and_merchant(
    pool: Any, keys: PostgresApiKeys
) -> None:
    merchant_id = await new_merchant(pool)
    scopes = frozenset({Scope.INVOICES_READ, Scope.WEBHOOKS_WRITE})
    expires = datetime.now(UTC) + timedelta(days=3)
    record, secret = await new_key(
        keys, merchant_id, scopes, name="billing", expires_at=expires, created_by="usr_someone"
    )

    held = await keys.credentials(record.key_id)

    assert held is not None
    assert held.key == record
    assert held.key.scopes == scopes
    assert DIGESTS.matches(secret, held.secret_hmac)
    assert held.previous_secret_hmac is None
    assert held.merchant.merchant_id == merchant_id
    assert held.merchant.fee_percentage == Decimal("1.00")
    assert held.merchant.confirmation_override is None
    assert held.suspended is False
    assert await keys.credentials("0000000000000000") is None


async def test_keys_lists_every_key_newest_first_revoked_too(
    pool: Any, keys: PostgresApiKeys
) -> None:
    merchant_id = await new_merchant(pool)
    now = datetime.now(UTC)
    older, _ = await new_key(keys, merchant_id, ALL_SCOPES, created_at=now - timedelta(hours=1))
    newer, _ = await new_key(keys, merchant_id, ALL_SCOPES, created_at=now)
    await keys.revoke(merchant_id, older.key_id)
    await new_key(keys, await new_merchant(pool), ALL_SCOPES)  # someone else's

    listed = await keys.keys(merchant_id)

    assert [key.key_id for key in listed] == [newer.key_id, older.key_id]
    assert listed[1].revoked_at is not None


async def test_a_revoked_key_has_no_credentials(pool: Any, keys: PostgresApiKeys) -> None:
    merchant_id = await new_merchant(pool)
    other_id = await new_merchant(pool)
    record, _ = await new_key(keys, merchant_id, ALL_SCOPES)

    assert await keys.revoke(other_id, record.key_id) is None  # not the other merchant's
    revoked = await keys.revoke(merchant_id, record.key_id)
    assert revoked is not None and revoked.revoked_at is not None
    assert revoked.key_id == record.key_id
    assert await keys.revoke(merchant_id, record.key_id) is None  # once only
    assert await keys.credentials(record.key_id) is None
    assert await keys.roll(merchant_id, record.key_id, b"x" * 32, datetime.now(UTC)) is None


async def test_a_rolled_key_keeps_its_previous_secret_for_the_grace(
    pool: Any, keys: PostgresApiKeys
) -> None:
    merchant_id = await new_merchant(pool)
    record, old_secret = await new_key(keys, merchant_id, frozenset({Scope.REPORTS_READ}))
    new_secret = new_credential(API_KEY).secret
    grace_until = datetime.now(UTC) + timedelta(hours=24)

    assert await keys.roll(await new_merchant(pool), record.key_id, b"x" * 32, grace_until) is None
    rolled = await keys.roll(merchant_id, record.key_id, DIGESTS.of(new_secret), grace_until)

    assert rolled is not None
    assert rolled.rolled_at is not None
    assert rolled.previous_valid_until == grace_until
    assert rolled.scopes == record.scopes
    held = await keys.credentials(record.key_id)
    assert held is not None
    assert DIGESTS.matches(new_secret, held.secret_hmac)
    assert DIGESTS.matches(old_secret, held.previous_secret_hmac)
    assert held.key.previous_valid_until == grace_until


async def test_a_suspended_merchants_key_says_so(
    pool: Any, keys: PostgresApiKeys, accounts: PostgresMerchantAccounts
) -> None:
    merchant_id = await new_merchant(pool)
    record, _ = await new_key(keys, merchant_id, ALL_SCOPES)
    await accounts.set_suspended(merchant_id, True)

    held = await keys.credentials(record.key_id)

    assert held is not None and held.suspended is True


async def test_an_unknown_scope_in_a_row_is_left_out_with_a_warning(
    pool: Any, keys: PostgresApiKeys, caplog: pytest.LogCaptureFixture
) -> None:
    merchant_id = await new_merchant(pool)
    credential = new_credential(API_KEY)
    await execute(
        pool,
        "INSERT INTO api_keys (key_id, merchant_id, secret_hmac, scopes) VALUES (%s, %s, %s, %s)",
        (credential.credential_id, merchant_id, DIGESTS.of(credential.secret),
         ["invoices:read", "teleport:write"]),
    )  # fmt: skip

    with caplog.at_level(logging.WARNING, logger="app.adapters.postgres.api_keys"):
        held = await keys.credentials(credential.credential_id)

    assert held is not None
    assert held.key.scopes == frozenset({Scope.INVOICES_READ})
    assert "teleport:write" in caplog.text


async def test_a_legacy_key_authenticates_and_is_upgraded_when_read(
    pool: Any, keys: PostgresApiKeys
) -> None:
    merchant_id = await new_merchant(pool)
    key_id, secret = await insert_legacy_key(pool, merchant_id)

    held = await keys.credentials(key_id)

    assert held is not None
    assert DIGESTS.matches(secret, held.secret_hmac)
    assert held.key.scopes == ALL_SCOPES  # the migration's promise to their merchants
    assert held.key.name == "default key"
    assert await stored_digests(pool, key_id) == (None, DIGESTS.of(secret))
    again = await keys.credentials(key_id)
    assert again is not None and again.secret_hmac == held.secret_hmac


async def test_rolling_a_legacy_key_keeps_its_old_secret_for_the_grace(
    pool: Any, keys: PostgresApiKeys
) -> None:
    merchant_id = await new_merchant(pool)
    key_id, old_secret = await insert_legacy_key(pool, merchant_id)
    new_secret = new_credential(API_KEY).secret

    rolled = await keys.roll(
        merchant_id, key_id, DIGESTS.of(new_secret), datetime.now(UTC) + timedelta(hours=1)
    )

    assert rolled is not None
    held = await keys.credentials(key_id)
    assert held is not None
    assert DIGESTS.matches(new_secret, held.secret_hmac)
    assert DIGESTS.matches(old_secret, held.previous_secret_hmac)
    assert (await stored_digests(pool, key_id))[0] is None


async def test_upgrade_legacy_hashes_upgrades_once(pool: Any, keys: PostgresApiKeys) -> None:
    merchant_id = await new_merchant(pool)
    legacy = [await insert_legacy_key(pool, merchant_id) for _ in range(2)]
    modern, modern_secret = await new_key(keys, merchant_id, ALL_SCOPES)

    assert await keys.upgrade_legacy_hashes() >= 2
    for key_id, secret in legacy:
        assert await stored_digests(pool, key_id) == (None, DIGESTS.of(secret))
    assert await stored_digests(pool, modern.key_id) == (None, DIGESTS.of(modern_secret))

    await keys.upgrade_legacy_hashes()  # others' legacy keys may appear meanwhile; ours not
    for key_id, secret in legacy:
        assert await stored_digests(pool, key_id) == (None, DIGESTS.of(secret))
        held = await keys.credentials(key_id)
        assert held is not None and DIGESTS.matches(secret, held.secret_hmac)


async def test_create_merchant_issues_a_first_key_with_every_scope(pool: Any) -> None:
    store = PostgresMerchantStore(pool, DIGESTS)
    keys = PostgresApiKeys(pool, DIGESTS)

    issued = await store.create_merchant(
        f"Access shop {secrets.token_hex(4)}", fee_percentage="2.5", confirmation_override=3
    )

    parsed = parse_credential(API_KEY, issued.api_key)
    assert parsed is not None
    held = await keys.credentials(parsed.credential_id)
    assert held is not None
    assert DIGESTS.matches(parsed.secret, held.secret_hmac)
    assert held.key.name == "default key"
    assert held.key.scopes == ALL_SCOPES
    assert held.merchant == issued.merchant
    assert (await stored_digests(pool, parsed.credential_id))[0] is None  # no plain digest
    assert await store.revoke_keys(issued.merchant.merchant_id) == 1
    assert await keys.credentials(parsed.credential_id) is None


async def test_create_merchant_needs_the_digests(pool: Any) -> None:
    with pytest.raises(RuntimeError, match="SecretDigests"):
        await PostgresMerchantStore(pool).create_merchant("No pepper shop")


# --- merchant accounts ----------------------------------------------------------------------------


async def test_an_account_is_updated_and_suspended(
    pool: Any, accounts: PostgresMerchantAccounts
) -> None:
    merchant_id = await new_merchant(pool)
    account = await accounts.account(merchant_id)
    assert account is not None
    assert account.suspended_at is None and account.created_at is not None

    changed = await accounts.update(
        merchant_id, {"fee_percentage": Decimal("2.75"), "confirmation_override": 7}
    )
    assert changed is not None
    assert changed.merchant.fee_percentage == Decimal("2.75")
    assert changed.merchant.confirmation_override == 7
    cleared = await accounts.update(merchant_id, {"confirmation_override": None})
    assert cleared is not None
    assert cleared.merchant.confirmation_override is None
    assert cleared.merchant.fee_percentage == Decimal("2.75")  # untouched
    with pytest.raises(ValueError, match="name"):
        await accounts.update(merchant_id, {"name": 1})

    suspended = await accounts.set_suspended(merchant_id, True)
    assert suspended is not None and suspended.suspended_at is not None
    again = await accounts.set_suspended(merchant_id, True)
    assert again is not None and again.suspended_at == suspended.suspended_at
    lifted = await accounts.set_suspended(merchant_id, False)
    assert lifted is not None and lifted.suspended_at is None
    assert (await accounts.account(merchant_id)) == lifted


async def test_an_unknown_merchant_is_none(accounts: PostgresMerchantAccounts) -> None:
    assert await accounts.account("mer_nobody") is None
    assert await accounts.update("mer_nobody", {"fee_percentage": Decimal("1")}) is None
    assert await accounts.set_suspended("mer_nobody", True) is None


async def test_accounts_page_by_merchant_id(pool: Any, accounts: PostgresMerchantAccounts) -> None:
    prefix = f"mer_p{secrets.token_hex(8)}_"
    for n in (3, 1, 2):  # made out of order
        await new_merchant(pool, f"{prefix}{n}")

    first = await accounts.accounts(after=prefix, limit=2)
    second = await accounts.accounts(after=first[-1].merchant.merchant_id, limit=2)

    assert [a.merchant.merchant_id for a in first] == [f"{prefix}1", f"{prefix}2"]
    assert second[0].merchant.merchant_id == f"{prefix}3"  # ``after`` is exclusive
    assert await accounts.accounts(after=None, limit=0) == []
    from_start = await accounts.accounts(after=None, limit=5)
    names = [a.merchant.merchant_id for a in from_start]
    assert names == sorted(names)


# --- users, invitations, sessions -----------------------------------------------------------------


def a_user(merchant_id: str | None, role: Role = Role.OWNER, **fields: Any) -> UserRecord:
    return UserRecord(
        user_id=f"usr_{secrets.token_hex(10)}",
        email=fields.pop("email", f"{secrets.token_hex(6)}@example.com"),
        merchant_id=merchant_id,
        role=role,
        created_at=datetime.now(UTC),
        **fields,
    )


async def test_users_are_added_read_and_unique_by_email(pool: Any, users: PostgresUsers) -> None:
    merchant_id = await new_merchant(pool)
    owner = a_user(merchant_id, password_hash="$argon2id$hash", created_by="operator")
    viewer = a_user(merchant_id, Role.VIEWER)
    admin = a_user(None, Role.ADMIN)
    for user in (owner, viewer, admin):
        await users.add_user(user)

    with pytest.raises(AlreadyExists):
        await users.add_user(a_user(merchant_id, email=owner.email))
    fetched = await users.user(owner.user_id)
    assert fetched is not None
    assert fetched.user_id == owner.user_id and fetched.role is Role.OWNER
    assert fetched.password_hash == "$argon2id$hash" and fetched.created_by == "operator"
    assert (await users.user_by_email(viewer.email)) == await users.user(viewer.user_id)
    assert (await users.user(admin.user_id)).role is Role.ADMIN  # type: ignore[union-attr]
    assert [u.user_id for u in await users.users(merchant_id)] == [owner.user_id, viewer.user_id]
    assert await users.user("usr_nobody") is None

    await users.set_password(viewer.user_id, "$argon2id$other")
    assert (await users.user(viewer.user_id)).password_hash == "$argon2id$other"  # type: ignore[union-attr]
    developer = await users.set_role(merchant_id, viewer.user_id, Role.DEVELOPER)
    assert developer is not None and developer.role is Role.DEVELOPER
    assert await users.set_role(await new_merchant(pool), viewer.user_id, Role.OWNER) is None


async def test_a_user_is_disabled_once_by_their_merchant(pool: Any, users: PostgresUsers) -> None:
    merchant_id = await new_merchant(pool)
    user = a_user(merchant_id, Role.DEVELOPER)
    await users.add_user(user)

    assert await users.disable(await new_merchant(pool), user.user_id) is None
    disabled = await users.disable(merchant_id, user.user_id)
    assert disabled is not None and disabled.disabled_at is not None
    assert await users.disable(merchant_id, user.user_id) is None


async def test_an_invitation_is_accepted_once(pool: Any, users: PostgresUsers) -> None:
    merchant_id = await new_merchant(pool)
    invitee = a_user(merchant_id, Role.VIEWER)
    await users.add_user(invitee)
    invitation = Invitation(
        invitation_id=secrets.token_hex(8),
        user_id=invitee.user_id,
        secret_hmac=DIGESTS.of("secret"),
        expires_at=datetime.now(UTC) + timedelta(days=7),
    )
    await users.add_invitation(invitation)
    assert await users.invitation(invitation.invitation_id) == invitation

    assert await users.accept_invitation(invitation.invitation_id, "$argon2id$first") is True
    assert await users.accept_invitation(invitation.invitation_id, "$argon2id$second") is False
    assert (await users.user(invitee.user_id)).password_hash == "$argon2id$first"  # type: ignore[union-attr]
    accepted = await users.invitation(invitation.invitation_id)
    assert accepted is not None and accepted.accepted_at is not None
    assert await users.accept_invitation("0000000000000000", "$argon2id$x") is False


async def test_an_expired_invitation_is_not_accepted(pool: Any, users: PostgresUsers) -> None:
    merchant_id = await new_merchant(pool)
    invitee = a_user(merchant_id, Role.VIEWER)
    await users.add_user(invitee)
    invitation_id = secrets.token_hex(8)
    await users.add_invitation(
        Invitation(invitation_id, invitee.user_id, DIGESTS.of("s"), datetime.now(UTC))
    )

    assert await users.accept_invitation(invitation_id, "$argon2id$late") is False
    assert (await users.user(invitee.user_id)).password_hash is None  # type: ignore[union-attr]


def a_token(user_id: str, family_id: str) -> RefreshRecord:
    return RefreshRecord(
        token_id=secrets.token_hex(8),
        family_id=family_id,
        user_id=user_id,
        secret_hmac=DIGESTS.of(secrets.token_urlsafe(32)),
        expires_at=datetime.now(UTC) + timedelta(days=30),
    )


async def test_a_refresh_token_is_replaced_once(pool: Any, users: PostgresUsers) -> None:
    user = a_user(await new_merchant(pool))
    await users.add_user(user)
    token = a_token(user.user_id, f"fam_{secrets.token_hex(8)}")
    await users.add_refresh(token)
    assert await users.refresh_token(token.token_id) == token

    assert await users.replace_refresh(token.token_id) is True
    assert await users.replace_refresh(token.token_id) is False
    replaced = await users.refresh_token(token.token_id)
    assert replaced is not None and replaced.replaced_at is not None
    assert await users.replace_refresh("0000000000000000") is False


async def test_revoking_a_family_ends_every_token_of_it_only(
    pool: Any, users: PostgresUsers
) -> None:
    user = a_user(await new_merchant(pool))
    await users.add_user(user)
    family = f"fam_{secrets.token_hex(8)}"
    used, current = a_token(user.user_id, family), a_token(user.user_id, family)
    elsewhere = a_token(user.user_id, f"fam_{secrets.token_hex(8)}")
    for token in (used, current, elsewhere):
        await users.add_refresh(token)
    await users.replace_refresh(used.token_id)

    await users.revoke_family(family)

    for token in (used, current):
        revoked = await users.refresh_token(token.token_id)
        assert revoked is not None and revoked.revoked_at is not None
    assert await users.replace_refresh(current.token_id) is False
    assert (await users.refresh_token(elsewhere.token_id)).revoked_at is None  # type: ignore[union-attr]
    first_revocation = (await users.refresh_token(used.token_id)).revoked_at  # type: ignore[union-attr]
    await users.revoke_family(family)  # a second revocation keeps the first's time
    assert (await users.refresh_token(used.token_id)).revoked_at == first_revocation  # type: ignore[union-attr]

    await users.revoke_user_tokens(user.user_id)
    assert (await users.refresh_token(elsewhere.token_id)).revoked_at is not None  # type: ignore[union-attr]


# --- the audit log --------------------------------------------------------------------------------


async def test_audit_entries_come_back_oldest_first(pool: Any) -> None:
    log = PostgresAuditLog(pool)
    merchant_id = f"mer_a{secrets.token_hex(8)}"  # the log keeps no foreign key: none needed
    for n in range(3):
        await log.append(
            AuditEntry(
                action=f"keys.create.{n}",
                result="201",
                actor_kind="api_key",
                merchant_id=merchant_id,
                actor_id="0123456789abcdef",
                target_id=f"target{n}",
                request_id=f"req{n}",
                client_address="203.0.113.9",
                details={"n": n, "fee": Decimal("1.5"), "names": ["a", "b"]},
            )
        )
    await log.append(AuditEntry(action="admin.login", result="ok", actor_kind="user"))

    mine = await log.entries(merchant_id, after=None, limit=10)

    assert [entry.action for entry in mine] == [f"keys.create.{n}" for n in range(3)]
    ids = [entry.entry_id or 0 for entry in mine]
    assert ids == sorted(ids) and 0 not in ids
    assert mine[0].details == {"n": 0, "fee": "1.5", "names": ["a", "b"]}
    assert mine[0].occurred_at is not None and mine[0].client_address == "203.0.113.9"
    assert [e.entry_id for e in await log.entries(merchant_id, after=ids[0], limit=1)] == [ids[1]]
    everyone = await log.entries(None, after=ids[0] - 1, limit=MAX_ENTRIES)
    assert [e.entry_id for e in everyone if e.entry_id in ids] == ids  # every merchant's, in order
    assert any(e.action == "admin.login" and e.merchant_id is None for e in everyone)
    assert len(await log.entries(merchant_id, after=None, limit=0)) == 1  # held to 1 at least
    assert len(await log.entries(merchant_id, after=None, limit=10_000)) == 3


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET result = 'tampered' WHERE entry_id = %s",
        "DELETE FROM audit_log WHERE entry_id = %s",
    ],
)
async def test_the_audit_log_refuses_changes(pool: Any, statement: str) -> None:
    log = PostgresAuditLog(pool)
    merchant_id = f"mer_a{secrets.token_hex(8)}"
    await log.append(
        AuditEntry(action="keys.revoke", result="200", actor_kind="user", merchant_id=merchant_id)
    )
    (entry,) = await log.entries(merchant_id, after=None, limit=1)

    with pytest.raises(psycopg2.Error, match="append-only"):
        await execute(pool, statement, (entry.entry_id,))

    assert await log.entries(merchant_id, after=None, limit=5) == [entry]
