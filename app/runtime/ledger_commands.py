"""The operator's commands on the ledger and sweeps (docs/money-out.md, docs/operations.md):

- ``checkout ledger reconcile [--json] [--all]``: the ledger against the chain, per address and
  currency (the hot wallet, and each deposit address with customer funds or TRX in the books):
  ledger, received but not in the ledger, chain, difference; transfers in flight listed. Exit
  status 1 when a difference is beyond what transfers in flight explain;
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
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiopg
import click
import orjson
from faust.cli.base import cli

from app.adapters.postgres.audit_log import PostgresAuditLog
from app.adapters.postgres.reconcile import PostgresLedgerPositions
from app.adapters.postgres.sweeps import MerchantSweepCost, SweepCost, SweepReports
from app.adapters.tron.node import TronNode
from app.domain.errors import CheckoutError, InvalidAmount
from app.domain.money import parse_usdt
from app.domain.reconcile import InFlight, Position
from app.domain.sweeps import format_sun
from app.services.ports import AuditEntry
from app.services.reconcile import Reconciler
from app.settings import Settings


def register(settings: Settings) -> None:
    cli.add_command(_ledger(settings))
    cli.add_command(_sweeps(settings))


def _refuse(command: str, message: object) -> None:
    print(f"checkout {command}: {message}", file=sys.stderr)
    raise SystemExit(2)


def _print_json(body: Any) -> None:
    sys.stdout.write(orjson.dumps(body).decode() + "\n")


@asynccontextmanager
async def _pool(settings: Settings) -> AsyncIterator[aiopg.Pool]:
    pool = await aiopg.create_pool(settings.database_url, minsize=1, maxsize=4)
    try:
        yield pool
    finally:
        pool.close()
        await pool.wait_closed()


def _hot_wallet(settings: Settings, command: str) -> str:
    address = settings.chain.hot_wallet_address
    if address is None:
        _refuse(command, "no hot wallet is configured (TRON_HOT_WALLET_ADDRESS)")
    assert address is not None
    return address


# --- ledger -----------------------------------------------------------------------------------


def _ledger(settings: Settings) -> click.Group:
    @click.group(name="ledger")
    def ledger() -> None:
        """The platform's journal against the chain (docs/money-out.md)."""

    @ledger.command(name="reconcile")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
    @click.option(
        "--all",
        "everything",
        is_flag=True,
        help="Every address the ledger ever held customer funds on, balanced or not.",
    )
    def reconcile(as_json: bool, everything: bool) -> None:
        """Compare the ledger with the chain, per address and currency; exit 1 on a difference
        beyond the transfers still in flight (listed)."""
        hot = _hot_wallet(settings, "ledger reconcile")
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
            _refuse("ledger record-funding", exc.message)
        hot = _hot_wallet(settings, "ledger record-funding")
        asyncio.run(_record_funding(settings, hot, usdt_micro, trx_sun, reference))

    return ledger


async def _reconcile(settings: Settings, hot: str, *, as_json: bool, everything: bool) -> bool:
    async with _pool(settings) as pool, TronNode.from_settings(settings.chain) as node:
        result = await Reconciler(
            PostgresLedgerPositions(pool, hot),
            node,
            hot_wallet_address=hot,
            token_contract=settings.chain.usdt_contract,
            payout_fee_limit=settings.money_out_fee_limit,
        ).run(everything=everything)
    if as_json:
        _print_json(
            {
                "reconciled": result.ok,
                "differences": len(result.differences),
                "positions": [_position_json(p) for p in result.positions],
                "in_flight": [_in_flight_json(t) for t in result.in_flight],
            }
        )
    else:
        _print_positions(result.positions)
        _print_in_flight(result.in_flight)
        verdict = "reconciled" if result.ok else "NOT reconciled"
        print(
            f"{verdict}: {len(result.positions)} positions, {len(result.differences)} "
            f"differences, {len(result.in_flight)} transfers in flight"
        )
    return result.ok


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
    _table(header, rows, numeric=range(4, 8))


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
    _table(("kind", "reference", "txid", "from", "to", "", "amount"), rows, numeric=(6,))


async def _record_funding(
    settings: Settings, hot: str, usdt: int, trx_sun: int, reference: str
) -> None:
    async with _pool(settings) as pool:
        audit = PostgresAuditLog(pool)
        try:
            booked = await PostgresLedgerPositions(pool, hot).record_funding(
                usdt, trx_sun, reference
            )
        except (CheckoutError, ValueError) as exc:
            await audit.append(_audit("refused", reference, {"error": str(exc)[:300]}))
            _refuse("ledger record-funding", exc)
            return
        await audit.append(_audit("ok", reference, {"usdt": usdt, "trx_sun": trx_sun}))
    _print_json(
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
    async with _pool(settings) as pool:
        reports = SweepReports(pool)
        sweeps = await reports.sweeps(limit)
        merchants = await reports.merchants()
    if as_json:
        _print_json(
            {
                "sweeps": [_sweep_json(s) for s in sweeps],
                "merchants": [_merchant_json(m) for m in merchants],
            }
        )
        return
    print("per sweep (newest first):")
    _table(
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
    _table(
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


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: Iterable[int] = ()
) -> None:
    right = set(numeric)
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(cell).rjust(width) if i in right else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(header))
    for row in rows:
        print(line(row))
