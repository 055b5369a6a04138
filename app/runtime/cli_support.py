"""What the operator's commands share (app/runtime/*_commands.py): the services they drive, the
audit trail, and one way to answer.

Every command prints its result on standard output — a table for people, one JSON object with
``--json`` (or always, for the commands that hand out a secret) — and refuses with one line on
standard error naming the problem and exit status 2. A check that finds a difference (``ledger
reconcile``) exits 1. Whatever an operator changes is appended to the audit log, done or refused,
with the operator as the actor.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NoReturn

import aiopg
import click
import orjson
import redis.asyncio as aioredis

from app.adapters.auth.passwords import Argon2Passwords
from app.adapters.auth.tokens import TokenIssuer
from app.adapters.email.smtp import smtp_mailer
from app.adapters.postgres.api_keys import PostgresApiKeys
from app.adapters.postgres.audit_log import PostgresAuditLog
from app.adapters.postgres.merchants import PostgresMerchantAccounts, PostgresMerchantStore
from app.adapters.postgres.signup import PostgresSignups
from app.adapters.postgres.users import PostgresUsers
from app.adapters.redis.access_changes import RedisAccessChanges
from app.adapters.redis.rate_limits import RateLimiter
from app.domain.errors import CheckoutError
from app.services.access import AccessControl, ApiKeys
from app.services.admin import PlatformAdmin
from app.services.credentials import SecretDigests
from app.services.ports import AuditEntry
from app.services.signup import Signup, SignupSettings
from app.services.users import LoginLimits, UserAccounts
from app.settings import Settings

# What --since/--until accept; a time without an offset is UTC (the platform's clock).
TIME_FORMATS: Final = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]


def as_utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


json_option = click.option(
    "--json", "as_json", is_flag=True, help="One JSON object on standard output instead of text."
)


def refuse(command: str, message: object) -> NoReturn:
    """The command cannot do what was asked: say why on standard error, exit status 2."""
    print(f"checkout {command}: {message}", file=sys.stderr)
    raise SystemExit(2)


def print_json(body: Any) -> None:
    sys.stdout.write(orjson.dumps(body).decode() + "\n")


def table(
    header: Sequence[str], rows: Sequence[Sequence[object]], *, numeric: Iterable[int] = ()
) -> None:
    """Columns padded to their widest cell; the ``numeric`` ones right-aligned."""
    right = set(numeric)
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[object]) -> str:
        return "  ".join(
            str(cell).rjust(width) if i in right else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(header))
    for row in rows:
        print(line(row))


@asynccontextmanager
async def database(settings: Settings, maxsize: int = 4) -> AsyncIterator[aiopg.Pool]:
    connections = await aiopg.create_pool(settings.database_url, minsize=1, maxsize=maxsize)
    try:
        yield connections
    finally:
        connections.close()
        await connections.wait_closed()


@dataclass(frozen=True)
class Tools:
    """The services behind the merchant, key and user commands, as a worker would build them."""

    merchants: PostgresMerchantStore
    accounts: PostgresMerchantAccounts
    keys: ApiKeys
    users: UserAccounts
    audit: PostgresAuditLog
    signup: Signup
    admin: PlatformAdmin


@asynccontextmanager
async def tools(settings: Settings) -> AsyncIterator[Tools]:
    connections = await aiopg.create_pool(settings.database_url, minsize=1, maxsize=2)
    redis = aioredis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    try:
        digests = SecretDigests(settings.api_key_pepper)
        accounts = PostgresMerchantAccounts(connections)
        users = PostgresUsers(connections)
        # Announces only (the CLI caches nothing), on the workers' channel: a revoked key or a
        # suspended merchant is refused by every worker at once.
        changes = RedisAccessChanges(redis, channel=f"checkout:{settings.app_id}:access-changes")
        tokens = TokenIssuer(settings.jwt_secret.encode())
        api_keys = PostgresApiKeys(connections, digests)
        access = AccessControl(api_keys, users, accounts, tokens, digests, changes)
        yield Tools(
            merchants=PostgresMerchantStore(connections, digests),
            accounts=accounts,
            keys=ApiKeys(api_keys, digests, access),
            users=UserAccounts(
                users,
                accounts,
                Argon2Passwords(),
                tokens,
                digests,
                access,
                RateLimiter(redis, prefix=f"checkout:{settings.app_id}:rl:"),
                LoginLimits(settings.login_failures_per_account, settings.login_failures_per_ip),
            ),
            audit=PostgresAuditLog(connections),
            signup=Signup(
                PostgresSignups(connections),
                users,
                Argon2Passwords(),
                digests,
                smtp_mailer(settings),
                RateLimiter(redis, prefix=f"checkout:{settings.app_id}:rl:"),
                # Invitations only here: the mode and the rate do not matter to the CLI.
                SignupSettings(settings.signup_mode, settings.public_url, settings.signups_per_ip),
            ),
            admin=PlatformAdmin(accounts, access),
        )
    finally:
        await redis.aclose()
        connections.close()
        await connections.wait_closed()


def operator_entry(
    command: str,
    result: str,
    *,
    merchant_id: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """The audit log's line for an operator's command (``cli <command>``)."""
    return AuditEntry(
        action=f"cli {command}",
        result=result,
        actor_kind="operator",
        actor_id="operator",
        merchant_id=merchant_id,
        target_id=None if target_id is None else target_id[:200],
        details=details or {},
    )


async def audited(
    audit: PostgresAuditLog,
    command: str,
    merchant_id: str | None,
    target: Callable[[Any], str | None],
    work: Callable[[], Awaitable[Any]],
    details: Callable[[Any], dict[str, Any] | None] = lambda _: None,
) -> Any:
    """Run ``work``; append its entry to the audit log, done or refused (then exit 2)."""
    try:
        result = await work()
    except (CheckoutError, ValueError) as exc:
        await audit.append(
            operator_entry(
                command, "refused", merchant_id=merchant_id, details={"error": str(exc)[:300]}
            )
        )
        refuse(command, exc)
    await audit.append(
        operator_entry(
            command,
            "ok",
            merchant_id=merchant_id,
            target_id=target(result),
            details=details(result),
        )
    )
    return result
