"""The operator's commands on Faust's CLI, next to Faust's own (``checkout --help``).

- ``create-merchant --name …``: a merchant and its first API key (every scope);
- ``create-user --merchant … --email … --role owner|developer|viewer`` and
  ``create-admin --email …``: the password is read from standard input (never an argument,
  which ``ps`` and the shell history would show);
- ``create-api-key --merchant … --name … --scopes a,b``, ``list-api-keys --merchant …``,
  ``revoke-api-key --merchant … --key …``, ``roll-api-key --merchant … --key … [--grace …]``:
  what a merchant does through the API, for the operator (the audit log names the operator);
- ``create-signup-invitation [--note …] [--days N]``: a one-time code that lets one new merchant
  sign up when ``SIGNUP_MODE=invite`` (app/services/signup.py), with the sign-up link;
- ``signer``: the signer process (docs/money-out.md): holds the keys, answers signing requests
  from Kafka, nothing else; runs until SIGINT or SIGTERM;
- ``rebuild-read-models [--only NAME,…]``: replay the event store into fresh read models and swap
  them in while the projection runs (app/adapters/postgres/read_model_rebuild.py).
- ``ledger reconcile``, ``ledger record-funding``, ``sweeps report``: the ledger against the chain,
  the owner's funding of the hot wallet, what sweeps cost (app/runtime/ledger_commands.py).
- ``money-out give-up-refund``: fail a refund held since a reorg took the payment that funded it
  (app/runtime/money_out_commands.py).

Each prints one JSON object on standard output; a refusal is one line on standard error and
exit status 2. They work on PostgreSQL directly and tell the workers about key changes through
Redis, so a revoked key is refused at once. ``register`` adds them before ``app.main()`` runs
(app/cli.py).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import timedelta
from typing import Any

import aiopg
import faust
from faust.cli import option
from faust.cli.base import cli

from app.adapters.postgres.read_model_rebuild import (
    READ_MODELS,
    MonthsArchivedAway,
    ReadModelRebuild,
    UnknownReadModel,
    chosen,
)
from app.adapters.signer.kafka import SignerLoop
from app.adapters.signer.keys import FileKeys, KeyFileError, dev_keys
from app.adapters.signer.signed_log import JsonlSignedLog
from app.adapters.tron.raw_transactions import UndecodableTransaction, decode_raw_transaction
from app.domain.access import Principal, parse_scopes
from app.domain.fees import format_fee_percentage
from app.domain.signing import Purpose, SignerLimits
from app.runtime import ledger_commands
from app.runtime.chain_commands import chain_group
from app.runtime.cli_support import Tools, audited, print_json, refuse
from app.runtime.cli_support import tools as cli_tools
from app.runtime.consumer_commands import consumers_group
from app.runtime.dead_letter_commands import dlq_group
from app.runtime.event_commands import events_group
from app.runtime.merchant_commands import merchants_group
from app.runtime.money_out_commands import money_out_group
from app.runtime.notice_commands import notices_group
from app.runtime.topics import SIGNATURES, SIGNING_REQUESTS, topic_name
from app.runtime.unmatched_commands import unmatched_group
from app.runtime.webhook_commands import webhooks_group
from app.services.access import operator
from app.services.ports import ApiKeyRecord, UserRecord
from app.services.signer import Signer
from app.settings import Settings, parse_signer_limits


def _key_json(key: ApiKeyRecord, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": key.key_id,
        "merchant_id": key.merchant_id,
        "name": key.name,
        "scopes": sorted(scope.value for scope in key.scopes),
        "created_at": key.created_at.isoformat(),
        "expires_at": None if key.expires_at is None else key.expires_at.isoformat(),
        "revoked_at": None if key.revoked_at is None else key.revoked_at.isoformat(),
        "previous_secret_valid_until": (
            None if key.previous_valid_until is None else key.previous_valid_until.isoformat()
        ),
    }
    if secret is not None:
        body["secret"] = secret
    return body


def _user_json(user: UserRecord) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "email": user.email,
        "merchant_id": user.merchant_id,
        "role": user.role.value,
        "created_at": user.created_at.isoformat(),
    }


def _password_from_stdin(command: str) -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        refuse(command, "give the password on standard input (e.g. a pipe from your vault)")
    return password


async def _as_operator(tools: Tools, command: str, merchant_id: str) -> Principal:
    account = await tools.accounts.account(merchant_id)
    if account is None:
        refuse(command, f"no merchant {merchant_id}")
    assert account is not None
    return operator(account)


async def _rebuild_read_models(settings: Settings, only: str | None, batch: int) -> None:
    names = [name.strip() for name in (only or "").split(",") if name.strip()]
    if not 1 <= batch <= 100_000:
        refuse("rebuild-read-models", f"--batch must be 1 to 100,000, not {batch}")
    try:
        chosen(names)
    except UnknownReadModel as exc:
        refuse("rebuild-read-models", exc)

    async def progress(events: int, through_seq: int) -> None:
        print(f"replayed {events} events (through seq {through_seq})", file=sys.stderr)

    pool = await aiopg.create_pool(settings.database_url, minsize=1, maxsize=1)
    try:
        report = await ReadModelRebuild(pool, batch=batch).rebuild(names, progress=progress)
    except MonthsArchivedAway as exc:
        refuse("rebuild-read-models", exc)
    finally:
        pool.close()
        await pool.wait_closed()
    print_json(
        {
            "read_models": report.read_models,
            "events": report.events,
            "caught_up": report.caught_up,
            "unreadable": report.unreadable,
            "through_seq": report.through_seq,
            "rows": report.rows,
            "seconds": round(report.seconds, 3),
        }
    )


def _signer_keys(settings: Settings) -> FileKeys:
    hot_file, xprv_file = settings.signer_hot_wallet_key_file, settings.signer_deposit_xprv_file
    if hot_file is not None and xprv_file is not None:
        return FileKeys.from_files(hot_file, xprv_file, expected_xpub=settings.chain.xpub)
    if settings.chain.network != "sim" or hot_file is not None or xprv_file is not None:
        raise KeyFileError(
            "SIGNER_HOT_WALLET_KEY_FILE and SIGNER_DEPOSIT_XPRV_FILE are both required "
            "(only the sim network has development keys)"
        )
    hot, xprv = dev_keys()
    return FileKeys(hot, xprv, expected_xpub=settings.chain.xpub)


async def _run_signer(settings: Settings) -> None:
    try:
        keys = _signer_keys(settings)
    except KeyFileError as exc:
        refuse("signer", exc)
    limits = parse_signer_limits(settings.signer_limits)
    signer = Signer(
        keys,
        JsonlSignedLog(settings.signer_log_file),
        SignerLimits(
            per_transaction={Purpose(name): each for name, (each, _) in limits.items()},
            per_day={Purpose(name): daily for name, (_, daily) in limits.items()},
        ),
        token_contract=settings.chain.usdt_contract,
        decode=decode_raw_transaction,
        undecodable=UndecodableTransaction,
    )
    loop = SignerLoop(
        signer,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        requests_topic=topic_name(SIGNING_REQUESTS, settings.topic_namespace),
        answers_topic=topic_name(SIGNATURES, settings.topic_namespace),
        group_id=f"{settings.app_id}-signer",
    )
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    print(
        f"signer: hot wallet {keys.hot_wallet}, answering on "
        f"{topic_name(SIGNATURES, settings.topic_namespace)}",
        file=sys.stderr,
        flush=True,
    )
    await loop.run(stop)


def _register_signer(app: faust.App, settings: Settings) -> None:
    @app.command()
    async def signer(self: Any) -> None:
        """Run the signer: the only holder of private keys (docs/money-out.md).

        Reads checkout.signing-requests, answers on checkout.signatures; no HTTP, no database.
        Keys from SIGNER_HOT_WALLET_KEY_FILE and SIGNER_DEPOSIT_XPRV_FILE (on sim, the public
        development mnemonic when both are unset). Runs until SIGINT or SIGTERM.
        """
        await _run_signer(settings)


def _register_groups(settings: Settings) -> None:
    """Command groups: Faust's CLI is a click group, and these are added to it beside its own."""
    ledger_commands.register(settings)
    chain = chain_group(settings)
    chain.add_command(unmatched_group(settings))  # `chain unmatched` (unmatched_commands.py)
    for group in (
        merchants_group(settings),
        dlq_group(settings),
        events_group(settings, _rebuild_read_models),
        chain,
        webhooks_group(settings),
        notices_group(settings),
        consumers_group(settings),
        money_out_group(settings),
    ):
        cli.add_command(group)


def register(app: faust.App, settings: Settings) -> None:
    _register_signer(app, settings)
    _register_groups(settings)
    merchant_option = option("--merchant", type=str, required=True, help="The merchant's id.")

    @app.command(
        option("--name", type=str, required=True, help="The merchant's business name."),
        option(
            "--fee-percentage",
            type=str,
            default="1.0",
            show_default=True,
            help="Platform fee in percent of the gross, 0 to 100, at most 2 decimals.",
        ),
        option(
            "--confirmations",
            type=int,
            default=None,
            help="Replace the amount-based confirmation policy for this merchant (1 to 100).",
        ),
    )
    async def create_merchant(
        self: Any, name: str, fee_percentage: str, confirmations: int | None
    ) -> None:
        """Create a merchant with an API key (every scope); prints JSON with the key.

        The API key is shown this once: store it in the merchant's secret manager.
        """
        async with cli_tools(settings) as tools:
            issued = await audited(
                tools.audit,
                "create-merchant",
                None,
                lambda issued: issued.merchant.merchant_id,
                lambda: tools.merchants.create_merchant(
                    name, fee_percentage=fee_percentage, confirmation_override=confirmations
                ),
            )
        merchant = issued.merchant
        print_json(
            {
                "merchant_id": merchant.merchant_id,
                "name": merchant.name,
                "fee_percentage": format_fee_percentage(merchant.fee_percentage),
                "confirmation_override": merchant.confirmation_override,
                "api_key": issued.api_key,
            }
        )

    @app.command(
        merchant_option,
        option("--email", type=str, required=True, help="The user's email (their sign-in)."),
        option(
            "--role",
            type=str,
            required=True,
            help="owner, developer or viewer (docs/security.md: what each may do).",
        ),
    )
    async def create_user(self: Any, merchant: str, email: str, role: str) -> None:
        """Create a merchant user; the password is read from standard input. Prints JSON."""
        password = _password_from_stdin("create-user")
        async with cli_tools(settings) as tools:
            user = await audited(
                tools.audit,
                "create-user",
                merchant,
                lambda user: user.user_id,
                lambda: tools.users.create_user(
                    email=email, password=password, role=role, merchant_id=merchant
                ),
            )
        print_json(_user_json(user))

    @app.command(
        option("--note", type=str, default=None, help="Whom it is for (kept with the code)."),
        option(
            "--days",
            type=int,
            default=14,
            show_default=True,
            help="Days the code stays valid (1 to 90).",
        ),
    )
    async def create_signup_invitation(self: Any, note: str | None, days: int) -> None:
        """A one-time code for one new merchant to sign up (SIGNUP_MODE=invite). Prints JSON:
        the code, when it expires, and the sign-up link to send."""
        async with cli_tools(settings) as tools:
            code, expires_at = await audited(
                tools.audit,
                "create-signup-invitation",
                None,
                lambda _: None,
                lambda: tools.signup.invite(note=note, expires_in=timedelta(days=days)),
            )
        print_json(
            {
                "invitation": code,
                "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
                "signup_url": f"{settings.public_url}/dashboard/signup?invitation={code}",
                "signup_mode": settings.signup_mode,
            }
        )

    @app.command(
        option("--email", type=str, required=True, help="The admin's email (their sign-in)."),
    )
    async def create_admin(self: Any, email: str) -> None:
        """Create a platform admin; the password is read from standard input. Prints JSON."""
        password = _password_from_stdin("create-admin")
        async with cli_tools(settings) as tools:
            user = await audited(
                tools.audit,
                "create-admin",
                None,
                lambda user: user.user_id,
                lambda: tools.users.create_user(
                    email=email, password=password, role="admin", merchant_id=None
                ),
            )
        print_json(_user_json(user))

    @app.command(
        merchant_option,
        option("--name", type=str, required=True, help="What the key is for."),
        option(
            "--scopes",
            type=str,
            required=True,
            help="Comma-separated scopes, e.g. invoices:read,invoices:write.",
        ),
    )
    async def create_api_key(self: Any, merchant: str, name: str, scopes: str) -> None:
        """Create an API key for a merchant; prints JSON with its secret, shown once."""
        async with cli_tools(settings) as tools:
            principal = await _as_operator(tools, "create-api-key", merchant)
            key, secret = await audited(
                tools.audit,
                "create-api-key",
                merchant,
                lambda created: created[0].key_id,
                lambda: tools.keys.create(
                    principal,
                    name=name,
                    scopes=parse_scopes(item.strip() for item in scopes.split(",") if item),
                ),
            )
        print_json(_key_json(key, secret))

    @app.command(merchant_option)
    async def list_api_keys(self: Any, merchant: str) -> None:
        """A merchant's API keys (never their secrets), as JSON."""
        async with cli_tools(settings) as tools:
            principal = await _as_operator(tools, "list-api-keys", merchant)
            keys = await tools.keys.keys(principal)
        print_json({"data": [_key_json(key) for key in keys]})

    @app.command(merchant_option, option("--key", type=str, required=True, help="The key's id."))
    async def revoke_api_key(self: Any, merchant: str, key: str) -> None:
        """Revoke an API key: every worker refuses it at once."""
        async with cli_tools(settings) as tools:
            principal = await _as_operator(tools, "revoke-api-key", merchant)
            revoked = await audited(
                tools.audit,
                "revoke-api-key",
                merchant,
                lambda revoked: revoked.key_id,
                lambda: tools.keys.revoke(principal, key),
            )
        print_json(_key_json(revoked))

    @app.command(
        merchant_option,
        option("--key", type=str, required=True, help="The key's id."),
        option(
            "--grace",
            type=int,
            default=86400,
            show_default=True,
            help="Seconds the old secret keeps working (0 to 2592000).",
        ),
    )
    async def roll_api_key(self: Any, merchant: str, key: str, grace: int) -> None:
        """A new secret for an API key; prints JSON with it, shown once."""
        async with cli_tools(settings) as tools:
            principal = await _as_operator(tools, "roll-api-key", merchant)
            rolled, secret = await audited(
                tools.audit,
                "roll-api-key",
                merchant,
                lambda rolled: rolled[0].key_id,
                lambda: tools.keys.roll(principal, key, grace=timedelta(seconds=grace)),
            )
        print_json(_key_json(rolled, secret))

    @app.command(
        option(
            "--only",
            type=str,
            default=None,
            help="Comma-separated read models (default: all): "
            + ", ".join(READ_MODELS)
            + ". The dashboard and report tables are one fold: naming one rebuilds it.",
        ),
        option(
            "--batch",
            type=int,
            default=1_000,
            show_default=True,
            help="Events replayed per transaction (1 to 100,000).",
        ),
    )
    async def rebuild_read_models(self: Any, only: str | None, batch: int) -> None:
        """Replay the event store into fresh read models and swap them in atomically.

        The live projection keeps running: it waits only while the last events are caught up
        and the tables swapped. Prints JSON: the read models, events replayed, rows, seconds.
        """
        await _rebuild_read_models(settings, only, batch)
