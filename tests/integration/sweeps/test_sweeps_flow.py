"""Sweeps on the real stack: two workers, the signer in its own process, Kafka, a PostgreSQL of
the test's own (the reconciliation compares one ledger with one chain: a shared database holds
other runs' books of other simulators) and the Tron simulator. Twenty paid invoices' addresses are
topped up by the hot wallet and swept into it, each sweep's energy, bandwidth and TRX recorded
from its receipts; a dust payment waits; ``checkout sweeps report`` shows the cost per sweep and
per merchant, and ``checkout ledger reconcile`` finds the ledger and the chain equal."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg2
import pytest

from app.adapters.postgres.migrations import migrate
from app.adapters.tron.settings import DEV_HOT_WALLET
from tests.support.platform import Platform, running_platform
from tests.support.postgres import throwaway_postgres
from tests.support.processes import REPO_ROOT, VENV_BIN, ManagedProcess, eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

INVOICES = 20
DUST = "2"  # below SWEEP_MIN_USDT: waits on its address


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data = tmp_path_factory.mktemp("sweeps")
    with throwaway_postgres() as database:
        migrate(database.url)
        overrides = {
            "DATABASE_URL": database.url,
            "SWEEP_MIN_USDT": "5",
            "SWEEP_BATCH_SIZE": str(INVOICES),
            "SWEEP_INTERVAL": "0.3",
            "MONEY_OUT_INTERVAL": "0.3",
        }
        with running_platform(data, **overrides) as running:
            signer = ManagedProcess(
                "signer",
                [str(VENV_BIN / "checkout"), "signer"],
                {**running.env, "SIGNER_LOG_FILE": str(data / "signed.jsonl")},
                REPO_ROOT,
            )
            try:
                funded = running.sim.post(
                    "/sim/fund", {"address": DEV_HOT_WALLET, "trx": "10000", "usdt": "100000"}
                )
                cli(
                    running,
                    "ledger",
                    "record-funding",
                    "--usdt",
                    "100000",
                    "--trx",
                    "10000",
                    "--reference",
                    f"sim-fund:{funded['txids'][0]}",
                )
                yield running
            finally:
                signer.stop()


def cli_text(platform: Platform, *args: str, status: int = 0) -> str:
    result = subprocess.run(
        [str(VENV_BIN / "checkout"), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**platform.env},
        timeout=60,
        check=False,
    )
    assert result.returncode == status, f"{result.stdout}\n{result.stderr}"
    return result.stdout


def cli(platform: Platform, *args: str, status: int = 0) -> dict[str, Any]:
    return dict(json.loads(cli_text(platform, *args, status=status).strip().splitlines()[-1]))


def rows(platform: Platform, sql: str) -> list[tuple[Any, ...]]:
    with psycopg2.connect(platform.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def sweep_until_done(platform: Platform, expected: int, timeout: float = 120) -> None:
    """Mine as the sweeps need: a block for what was just broadcast, 19 to solidify it."""

    def probe() -> bool:
        stages = dict(rows(platform, "SELECT stage, count(*) FROM sweeps GROUP BY stage"))
        if stages.get("confirmed", 0) >= expected and len(stages) == 1:
            return True
        assert "failed" not in stages, rows(platform, "SELECT failure_reason FROM sweeps")
        waiting = rows(
            platform,
            "SELECT count(*) FILTER (WHERE broadcast_accepted AND block_number IS NULL),"
            " count(*) FILTER (WHERE block_number IS NOT NULL) FROM sweeps"
            " WHERE stage IN ('due', 'topping_up', 'sweeping')",
        )[0]
        if waiting[0]:
            platform.sim.mine(1)  # into a block
        elif waiting[1]:
            platform.sim.mine(19)  # solidified
        else:
            platform.sim.mine(1)  # a fresh head for what is built next
        return False

    eventually(probe, timeout=timeout, what=f"{expected} sweeps confirmed", every=0.5)


def test_twenty_paid_addresses_are_swept_with_their_cost_and_the_ledger_reconciles(
    platform: Platform,
) -> None:
    amounts = [Decimal(10 + n) + Decimal("0.25") for n in range(INVOICES)]
    invoices = [platform.create_invoice(str(amount)) for amount in amounts]
    dust = platform.create_invoice(DUST)
    transfers = [
        {"to": invoice["deposit_address"], "amount": str(amount)}
        for invoice, amount in zip(invoices, amounts, strict=True)
    ]
    transfers.append({"to": dust["deposit_address"], "amount": DUST})
    platform.sim.post("/sim/transfers", {"transfers": transfers, "mine": True})
    for invoice in [*invoices, dust]:
        platform.wait_settlement(invoice["id"])

    sweep_until_done(platform, INVOICES)

    swept = rows(
        platform,
        "SELECT deposit_address, amount, trx_topped_up, topup_fees, sweep_fees, energy_usage,"
        " net_usage, net_fee, out_of_energy FROM sweeps ORDER BY created_at",
    )
    assert len(swept) == INVOICES
    assert {row[0] for row in swept} == {invoice["deposit_address"] for invoice in invoices}
    assert sum(row[1] for row in swept) == int(sum(amounts) * 1_000_000)
    for _, _, topped_up, topup_fee, sweep_fee, energy, net_usage, net_fee, short in swept:
        # The top-up activates the address: the hot wallet burns 1.1 TRX, of which 0.1 TRX is
        # its bandwidth. The sweep burns 64,285 energy at 100 sun (the hot wallet holds USDT)
        # and takes its 345 bytes from the address's free allowance.
        assert (topped_up, topup_fee, short) == (7_080_000, 1_100_000, 0)
        assert (sweep_fee, energy, net_usage, net_fee) == (6_428_500, 64_285, 345, 100_000)
    receipts = rows(platform, "SELECT kind, result, count(*) FROM sweep_transactions GROUP BY 1, 2")
    assert sorted(receipts) == [("sweep", "SUCCESS", INVOICES), ("topup", "SUCCESS", INVOICES)]
    for invoice in invoices[:3]:
        address = invoice["deposit_address"]
        account = platform.sim.post("/wallet/getaccount", {"address": address, "visible": True})
        assert account["balance"] == 7_080_000 - 6_428_500  # what the sweep left there

    report = cli(platform, "sweeps", "report", "--json", "--limit", "100")
    (merchant,) = report["merchants"]
    assert merchant["merchant_id"] == platform.merchant_id
    assert (merchant["sweeps"], merchant["failed"], merchant["open"]) == (INVOICES, 0, 0)
    assert Decimal(merchant["usdt_swept"]) == sum(amounts)
    assert Decimal(merchant["trx_per_sweep"]) == Decimal("7.5285")
    assert Decimal(merchant["trx_burned"]) == INVOICES * Decimal("7.5285")
    assert (merchant["energy"], merchant["bandwidth_bytes"]) == (INVOICES * 64_285, INVOICES * 345)
    assert len(report["sweeps"]) == INVOICES

    reconciled = cli(platform, "ledger", "reconcile", "--json")
    assert reconciled["reconciled"] is True and reconciled["differences"] == 0
    assert reconciled["in_flight"] == []
    positions = {(p["address"], p["currency"]): p for p in reconciled["positions"]}
    hot_usdt = positions[(DEV_HOT_WALLET, "USDT")]
    assert Decimal(hot_usdt["chain"]) == 100_000 + sum(amounts) == Decimal(hot_usdt["ledger"])
    hot_trx = positions[(DEV_HOT_WALLET, "TRX")]
    assert Decimal(hot_trx["chain"]) == 10_000 - INVOICES * (Decimal("7.08") + Decimal("1.1"))
    for invoice in invoices:
        trx = positions[(invoice["deposit_address"], "TRX")]
        assert trx["ledger"] == trx["chain"] == "0.6515" and trx["status"] == "ok"
    waiting = positions[(dust["deposit_address"], "USDT")]
    assert waiting["ledger"] == waiting["chain"] == DUST and waiting["status"] == "ok"
    assert all(p["difference"] == "0" for p in reconciled["positions"])
    table = cli_text(platform, "ledger", "reconcile")
    assert table.splitlines()[-1].startswith(f"reconciled: {2 + 2 * (INVOICES + 1)} positions")
    print(table, cli_text(platform, "sweeps", "report", "--limit", "3"), sep="\n")
