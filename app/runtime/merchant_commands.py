"""``checkout merchants list|show|update|suspend|unsuspend``: the platform admin's merchant
operations (app/services/admin.py) for the operator, with the same rules as the admin API.

A change reaches every worker at once (the access cache is dropped through Redis); a new fee
counts from the merchant's next invoice. Suspending refuses the merchant's keys and users with
403 ``merchant_suspended`` while its invoices are still watched and settled. Every change is in
the audit log as ``cli merchants <action>``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import click

from app.adapters.postgres.merchants import PostgresMerchantAccounts
from app.adapters.postgres.reports import PostgresReports
from app.domain.access import ROLE_SCOPES, Principal, Role
from app.domain.fees import format_fee_percentage
from app.domain.money import format_usdt
from app.runtime.cli_support import (
    audited,
    database,
    json_option,
    print_json,
    refuse,
    table,
    tools,
)
from app.services.admin import MAX_PAGE
from app.services.ports import MerchantAccount
from app.settings import Settings

# The operator on the CLI acts as the platform admin.
PLATFORM_OPERATOR = Principal(
    kind="operator",
    actor_id="operator",
    merchant=None,
    role=Role.ADMIN,
    scopes=ROLE_SCOPES[Role.ADMIN],
)


def merchants_group(settings: Settings) -> click.Group:
    @click.group(name="merchants")
    def merchants() -> None:
        """Merchants: list, show, change the fee or confirmations, suspend (docs/operations.md)."""

    @merchants.command(name="list")
    @click.option("--after", default=None, help="Start after this merchant id (the next page).")
    @click.option(
        "--limit", type=click.IntRange(1, MAX_PAGE), default=50, show_default=True, help="Rows."
    )
    @json_option
    def list_(after: str | None, limit: int, as_json: bool) -> None:
        """Merchants by id, a page at a time."""
        accounts = asyncio.run(_list(settings, after, limit))
        if as_json:
            print_json(
                {
                    "data": [_account_json(account) for account in accounts],
                    "next_after": accounts[-1].merchant.merchant_id
                    if len(accounts) == limit
                    else None,
                }
            )
            return
        table(
            ("merchant", "name", "fee %", "confirmations", "suspended"),
            [
                (
                    a.merchant.merchant_id,
                    a.merchant.name[:40],
                    format_fee_percentage(a.merchant.fee_percentage),
                    a.merchant.confirmation_override or "by amount",
                    "" if a.suspended_at is None else a.suspended_at.isoformat(),
                )
                for a in accounts
            ],
            numeric=(2,),
        )

    @merchants.command(name="show")
    @click.argument("merchant_id")
    @json_option
    def show(merchant_id: str, as_json: bool) -> None:
        """One merchant with its balance: available, incoming (unconfirmed), outgoing."""
        account, balance = asyncio.run(_show(settings, merchant_id))
        body = {
            **_account_json(account),
            **{f"balance_{part}": format_usdt(micro) for part, micro in balance.items()},
        }
        if as_json:
            print_json(body)
            return
        for name, value in body.items():
            print(f"{name:>22}  {'' if value is None else value}")

    @merchants.command(name="update")
    @click.argument("merchant_id")
    @click.option("--fee-percentage", default=None, help="Platform fee, 0 to 100 (e.g. 1.5).")
    @click.option(
        "--confirmations",
        default=None,
        help="Confirmations every invoice needs (1 to 100), or 'amount' for the amount policy.",
    )
    @click.option(
        "--underpaid-tolerance",
        default=None,
        help="Accept underpayments of at least this percent at expiry, or 'none'.",
    )
    @json_option
    def update(
        merchant_id: str,
        fee_percentage: str | None,
        confirmations: str | None,
        underpaid_tolerance: str | None,
        as_json: bool,
    ) -> None:
        """Change a merchant's fee, confirmation override or underpayment tolerance.

        A new fee counts from the merchant's next invoice; invoices already created keep theirs.
        """
        changes = _changes(fee_percentage, confirmations, underpaid_tolerance)
        account = asyncio.run(_update(settings, merchant_id, changes))
        _answer(account, as_json)

    for action, suspended in (("suspend", True), ("unsuspend", False)):
        merchants.add_command(_suspension(settings, action, suspended))

    return merchants


def _suspension(settings: Settings, action: str, suspended: bool) -> click.Command:
    what = (
        "Suspend a merchant: its API keys and users are refused at once (403 "
        "merchant_suspended); its invoices are still watched, confirmed and settled."
        if suspended
        else "Lift a merchant's suspension."
    )

    @click.command(name=action, help=what)
    @click.argument("merchant_id")
    @json_option
    def command(merchant_id: str, as_json: bool) -> None:
        account = asyncio.run(_suspend(settings, action, merchant_id, suspended))
        _answer(account, as_json)

    return command


def _changes(
    fee_percentage: str | None, confirmations: str | None, underpaid_tolerance: str | None
) -> dict[str, object]:
    """The admin API's changes from the options given (app/services/admin.py checks them)."""
    changes: dict[str, object] = {}
    if fee_percentage is not None:
        changes["fee_percentage"] = fee_percentage
    if confirmations is not None:
        changes["confirmations_override"] = _confirmations(confirmations)
    if underpaid_tolerance is not None:
        changes["underpaid_tolerance"] = (
            None if underpaid_tolerance.lower() == "none" else underpaid_tolerance
        )
    return changes


def _confirmations(value: str) -> int | None:
    if value.lower() == "amount":
        return None
    try:
        return int(value)
    except ValueError:
        refuse(
            "merchants update",
            f"--confirmations must be a whole number from 1 to 100 or 'amount', not {value[:40]!r}",
        )


async def _list(settings: Settings, after: str | None, limit: int) -> list[MerchantAccount]:
    async with tools(settings) as kit:
        return await kit.admin.merchants(PLATFORM_OPERATOR, after=after, limit=limit)


async def _show(settings: Settings, merchant_id: str) -> tuple[MerchantAccount, dict[str, int]]:
    async with database(settings, maxsize=1) as pool:
        account = await PostgresMerchantAccounts(pool).account(merchant_id)
        if account is None:
            refuse("merchants show", f"no merchant {merchant_id[:80]}")
        return account, await PostgresReports(pool).balance(merchant_id)


async def _update(
    settings: Settings, merchant_id: str, changes: Mapping[str, object]
) -> MerchantAccount:
    async with tools(settings) as kit:
        account: MerchantAccount = await audited(
            kit.audit,
            "merchants update",
            merchant_id,
            lambda _: merchant_id,
            lambda: kit.admin.update(PLATFORM_OPERATOR, merchant_id, changes),
            details=lambda _: {"changes": {k: str(v) for k, v in changes.items()}},
        )
    return account


async def _suspend(
    settings: Settings, action: str, merchant_id: str, suspended: bool
) -> MerchantAccount:
    async with tools(settings) as kit:
        account: MerchantAccount = await audited(
            kit.audit,
            f"merchants {action}",
            merchant_id,
            lambda _: merchant_id,
            lambda: kit.admin.set_suspended(PLATFORM_OPERATOR, merchant_id, suspended),
        )
    return account


def _answer(account: MerchantAccount, as_json: bool) -> None:
    body = _account_json(account)
    if as_json:
        print_json(body)
        return
    for name, value in body.items():
        print(f"{name:>22}  {'' if value is None else value}")


def _account_json(account: MerchantAccount) -> dict[str, Any]:
    merchant = account.merchant
    return {
        "merchant_id": merchant.merchant_id,
        "name": merchant.name,
        "fee_percentage": format_fee_percentage(merchant.fee_percentage),
        "confirmations_override": merchant.confirmation_override,
        "underpaid_tolerance": None
        if merchant.underpaid_tolerance is None
        else format_fee_percentage(merchant.underpaid_tolerance),
        "created_at": account.created_at.isoformat(),
        "suspended": account.suspended_at is not None,
        "suspended_at": None if account.suspended_at is None else account.suspended_at.isoformat(),
    }
