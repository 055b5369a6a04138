"""The operator's commands on the ledger and sweeps (docs/money-out.md, docs/operations.md):

- ``checkout ledger reconcile [--json] [--all] [--settlements-only]``: the ledger against the
  settlements (each booked once with its gross, fee and net; each fee as the fee rule gives it)
  and, when a hot wallet is configured, against the chain, per address and currency (the hot
  wallet, and each deposit address with customer funds or TRX in the books): ledger, received
  but not in the ledger, chain, difference; transfers in flight listed. Exit status 1 on a
  settlement difference, or a chain difference beyond what transfers in flight explain;
- ``checkout ledger record-funding --usdt X --trx Y --reference R``: book the owner's funding of
  the hot wallet from outside (``owner_funding`` → ``hot_wallet``), once per reference;
- ``checkout sweeps report [--json] [--limit N]``: what sweeps cost, per sweep (newest first) and
  per merchant: count, USDT swept, TRX topped up and burned, energy, bandwidth.

They read PostgreSQL and the Tron node directly (no worker needed). Faust's CLI has no command
groups of its own: these are click groups added to it (``register``, from
app/runtime/operator_commands.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import click
from faust.cli.base import cli

from app.adapters.postgres.audit_log import PostgresAuditLog
from app.adapters.postgres.reconcile import PostgresLedgerPositions, PostgresSettlementBooks
from app.adapters.postgres.sweeps import MerchantSweepCost, SweepCost, SweepReports
from app.adapters.tron.node import TronNode
from app.domain.errors import CheckoutError, InvalidAmount
from app.domain.money import parse_usdt
from app.domain.reconcile import InFlight, Position
from app.domain.sweeps import format_sun
from app.runtime.cli_support import database, print_json, refuse, table
from app.services.ports import AuditEntry
from app.services.reconcile import (
    Reconciler,
    SettlementDifference,
    SettlementReconciliation,
    reconcile_settlements,
)
from app.settings import Settings


def register(settings: Settings) -> None:
    cli.add_command(_ledger(settings))
    cli.add_command(_sweeps(settings))


def _hot_wallet(settings: Settings, command: str) -> str:
    address = settings.chain.hot_wallet_address
    if address is None:
        refuse(command, "no hot wallet is configured (TRON_HOT_WALLET_ADDRESS)")
    assert address is not None
    return address


# --- ledger -----------------------------------------------------------------------------------


def _ledger(settings: Settings) -> click.Group:
    @click.group(name="ledger")
    def ledger() -> None:
        """The platform's journal against the settlements and the chain (docs/money-out.md)."""

    @ledger.command(name="reconcile")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
    @click.option(
        "--all",
        "everything",
        is_flag=True,
        help="Every address the ledger ever held customer funds on, balanced or not.",
    )
    @click.option(
        "--settlements-only", is_flag=True, help="Only the ledger against the settlements."
    )
    def reconcile(as_json: bool, everything: bool, settlements_only: bool) -> None:
        """Compare the ledger with the settlements (each booked once, with its gross, fee and
        net; each fee as the fee rule gives it) and with the chain, per address and currency
        (when a hot wallet is configured); exit 1 on a difference beyond the transfers still
        in flight (listed)."""
        hot = None if settlements_only else settings.chain.hot_wallet_address
        ok = asyncio.run(_reconcile(settings, hot, as_json=as_json, everything=everything))
        raise SystemExit(0 if ok else 1)

    @ledger.command(name="record-funding")
    @click.option("--usdt", default="0", show_default=True, help="USDT the owner sent, e.g. 1000.")
    @click.option("--trx", default="0", show_default=True, help="TRX the owner sent, e.g. 500.")
    @click.option(
        "--reference",
        required=True,
        help="What identifies the funding (its txid, a transfer order): recorded once.",
    )
    def record_funding(usdt: str, trx: str, reference: str) -> None:
        """Book the owner's funding of the hot wallet from outside the platform. Prints JSON."""
        try:
            usdt_micro = parse_usdt(usdt, field="--usdt", allow_zero=True)
            trx_sun = parse_usdt(trx, field="--trx", allow_zero=True)
        except InvalidAmount as exc:
            refuse("ledger record-funding", exc.message)
        hot = _hot_wallet(settings, "ledger record-funding")
        asyncio.run(_record_funding(settings, hot, usdt_micro, trx_sun, reference))

    return ledger


async def _reconcile(
    settings: Settings, hot: str | None, *, as_json: bool, everything: bool
) -> bool:
    async with database(settings) as pool:
        books = await reconcile_settlements(PostgresSettlementBooks(pool))
        chain = None
        if hot is not None:
            async with TronNode.from_settings(settings.chain) as node:
                chain = await Reconciler(
                    PostgresLedgerPositions(pool, hot),
                    node,
                    hot_wallet_address=hot,
                    token_contract=settings.chain.usdt_contract,
                    payout_fee_limit=settings.money_out_fee_limit,
                ).run(everything=everything)
    ok = books.ok and (chain is None or chain.ok)
    positions = [] if chain is None else chain.positions
    in_flight = [] if chain is None else chain.in_flight
    differences = len(books.differences) + (0 if chain is None else len(chain.differences))
    if as_json:
        print_json(
            {
                "reconciled": ok,
                "differences": differences,
                "settlements": {
                    "checked": books.settlements,
                    "differences": [_settlement_json(d) for d in books.differences],
                },
                "chain_compared": chain is not None,
                "positions": [_position_json(p) for p in positions],
                "in_flight": [_in_flight_json(t) for t in in_flight],
            }
        )
        return ok
    _print_settlements(books)
    if chain is None:
        print("the chain was not compared (no hot wallet configured, or --settlements-only)")
    else:
        _print_positions(positions)
        _print_in_flight(in_flight)
    verdict = "reconciled" if ok else "NOT reconciled"
    print(
        f"{verdict}: {len(positions)} positions, {differences} differences, "
        f"{len(in_flight)} transfers in flight, {books.settlements} settlements"
    )
    return ok


def _settlement_json(difference: SettlementDifference) -> dict[str, Any]:
    return {
        "settlement_id": difference.settlement_id,
        "invoice_id": difference.invoice_id,
        "merchant_id": difference.merchant_id,
        "problem": difference.problem,
    }


def _print_settlements(books: SettlementReconciliation) -> None:
    if books.ok:
        print(f"settlements: {books.settlements} booked once each, fees as the rule gives\n")
        return
    print(f"settlements: {len(books.differences)} differences in {books.settlements}")
    table(
        ("settlement", "invoice", "merchant", "problem"),
        [
            (d.settlement_id, d.invoice_id or "", d.merchant_id or "", d.problem)
            for d in books.differences
        ],
    )
    print()


def _position_json(position: Position) -> dict[str, Any]:
    return {
        "address": position.address,
        "role": position.role,
        "invoice_id": position.invoice_id,
        "merchant_id": position.merchant_id,
        "currency": position.currency,
        "ledger": format_sun(position.ledger),
        "outside_ledger": format_sun(position.outside_ledger),
        "chain": format_sun(position.chain),
        "difference": format_sun(position.difference),
        "in_flight_range": [format_sun(position.low), format_sun(position.high)],
        "status": position.status,
    }


def _in_flight_json(transfer: InFlight) -> dict[str, Any]:
    return {
        "kind": transfer.kind,
        "reference": transfer.reference,
        "txid": transfer.txid,
        "from": transfer.source,
        "to": transfer.destination,
        "currency": transfer.currency,
        "amount": format_sun(transfer.amount),
        "fee_bound_trx": format_sun(transfer.fee_bound),
    }


def _print_positions(positions: Sequence[Position]) -> None:
    rows = [
        (
            "hot wallet" if p.role == "hot_wallet" else "deposit",
            p.address,
            p.invoice_id or "",
            p.currency,
            format_sun(p.ledger),
            format_sun(p.outside_ledger),
            format_sun(p.chain),
            format_sun(p.difference),
            p.status,
        )
        for p in positions
    ]
    header = ("", "address", "invoice", "", "ledger", "not in ledger", "chain", "difference", "")
    table(header, rows, numeric=range(4, 8))


def _print_in_flight(in_flight: Sequence[InFlight]) -> None:
    if not in_flight:
        return
    print("\nin flight (broadcast, not yet booked):")
    rows = [
        (
            t.kind,
            t.reference,
            t.txid or "",
            t.source,
            t.destination,
            t.currency,
            format_sun(t.amount),
        )
        for t in in_flight
    ]
    table(("kind", "reference", "txid", "from", "to", "", "amount"), rows, numeric=(6,))


async def _record_funding(
    settings: Settings, hot: str, usdt: int, trx_sun: int, reference: str
) -> None:
    async with database(settings) as pool:
        audit = PostgresAuditLog(pool)
        try:
            booked = await PostgresLedgerPositions(pool, hot).record_funding(
                usdt, trx_sun, reference
            )
        except (CheckoutError, ValueError) as exc:
            await audit.append(_audit("refused", reference, {"error": str(exc)[:300]}))
            refuse("ledger record-funding", exc)
            return
        await audit.append(_audit("ok", reference, {"usdt": usdt, "trx_sun": trx_sun}))
    print_json(
        {
            "reference": reference,
            "hot_wallet": hot,
            "usdt": format_sun(usdt),
            "trx": format_sun(trx_sun),
            "recorded": booked,
            "already_recorded": not booked,
        }
    )


def _audit(result: str, reference: str, details: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        action="cli ledger record-funding",
        result=result,
        actor_kind="operator",
        actor_id="operator",
        merchant_id=None,
        target_id=reference[:200],
        details=details,
    )


# --- sweeps -----------------------------------------------------------------------------------


def _sweeps(settings: Settings) -> click.Group:
    @click.group(name="sweeps")
    def sweeps() -> None:
        """Deposit addresses swept into the hot wallet (docs/money-out.md, "Sweeps")."""

    @sweeps.command(name="report")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object instead of tables.")
    @click.option(
        "--limit",
        default=50,
        show_default=True,
        type=click.IntRange(0, 100_000),
        help="Sweeps listed one by one, newest first (the per-merchant totals count every one).",
    )
    def report(as_json: bool, limit: int) -> None:
        """What sweeps cost: per sweep and per merchant (count, USDT swept, TRX topped up and
        burned, energy, bandwidth)."""
        asyncio.run(_report(settings, as_json=as_json, limit=limit))

    return sweeps


async def _report(settings: Settings, *, as_json: bool, limit: int) -> None:
    async with database(settings) as pool:
        reports = SweepReports(pool)
        sweeps = await reports.sweeps(limit)
        merchants = await reports.merchants()
    if as_json:
        print_json(
            {
                "sweeps": [_sweep_json(s) for s in sweeps],
                "merchants": [_merchant_json(m) for m in merchants],
            }
        )
        return
    print("per sweep (newest first):")
    table(
        (
            "sweep",
            "stage",
            "merchant",
            "address",
            "USDT",
            "TRX topped up",
            "TRX burned",
            "energy",
            "bandwidth",
        ),
        [
            (
                s.sweep_id,
                s.stage,
                s.merchant_id,
                s.deposit_address,
                format_sun(s.amount),
                format_sun(s.trx_topped_up),
                format_sun(s.burned),
                str(s.energy_usage),
                f"{s.net_usage} B + {format_sun(s.net_fee)} TRX",
            )
            for s in sweeps
        ],
        numeric=range(4, 8),
    )
    print("\nper merchant:")
    table(
        (
            "merchant",
            "swept",
            "failed",
            "open",
            "USDT swept",
            "TRX burned",
            "TRX per sweep",
            "energy",
            "bandwidth",
        ),
        [
            (
                m.merchant_id,
                str(m.confirmed),
                str(m.failed),
                str(m.open),
                format_sun(m.usdt_swept),
                format_sun(m.trx_burned),
                format_sun(m.trx_burned // max(1, m.confirmed)),
                str(m.energy_usage),
                f"{m.net_usage} B + {format_sun(m.net_fee)} TRX",
            )
            for m in merchants
        ],
        numeric=range(1, 8),
    )


def _sweep_json(sweep: SweepCost) -> dict[str, Any]:
    return {
        "sweep_id": sweep.sweep_id,
        "stage": sweep.stage,
        "merchant_id": sweep.merchant_id,
        "invoice_id": sweep.invoice_id,
        "deposit_address": sweep.deposit_address,
        "usdt": format_sun(sweep.amount),
        "trx_topped_up": format_sun(sweep.trx_topped_up),
        "trx_burned": format_sun(sweep.burned),
        "trx_burned_by_topups": format_sun(sweep.topup_fees),
        "trx_burned_by_sweep": format_sun(sweep.sweep_fees),
        "energy": sweep.energy_usage,
        "bandwidth_bytes": sweep.net_usage,
        "bandwidth_trx": format_sun(sweep.net_fee),
        "out_of_energy": sweep.out_of_energy,
        "transactions": sweep.attempts,
        "txid": sweep.swept_txid,
        "created_at": sweep.created_at.isoformat(),
        "finished_at": None if sweep.finished_at is None else sweep.finished_at.isoformat(),
    }


def _merchant_json(merchant: MerchantSweepCost) -> dict[str, Any]:
    return {
        "merchant_id": merchant.merchant_id,
        "sweeps": merchant.confirmed,
        "failed": merchant.failed,
        "open": merchant.open,
        "usdt_swept": format_sun(merchant.usdt_swept),
        "trx_topped_up": format_sun(merchant.trx_topped_up),
        "trx_burned": format_sun(merchant.trx_burned),
        "trx_per_sweep": format_sun(merchant.trx_burned // max(1, merchant.confirmed)),
        "energy": merchant.energy_usage,
        "bandwidth_bytes": merchant.net_usage,
        "bandwidth_trx": format_sun(merchant.net_fee),
    }
