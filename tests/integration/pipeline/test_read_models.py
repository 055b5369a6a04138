"""The read models of migrations/0012_read_models.sql, folded from real domain events.

The events come from the domain's own handlers (tests/unit/live/scenario.py): invoices paid,
overpaid, underpaid then expired, expired, cancelled, and paid after a reorg took their first
payment away, with their settlements. They are projected as the projection agent does
(``projections.apply_batch``: event store and invoice summaries, the read models by the event
store's trigger), then compared with what the events say, computed here in Python.

Each test has its own merchant and its own invoice and transaction ids; the platform-wide tables
(per day) are shared with every other run, so they are checked by how much they moved.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import aiopg
import pytest

from app.adapters.postgres import projections
from app.adapters.postgres.exports import PostgresExports
from app.adapters.postgres.ledger import PostgresLedger
from app.adapters.postgres.read_model_rebuild import (
    FOLD_STATE,
    READ_MODELS,
    ReadModelRebuild,
    UnknownReadModel,
)
from app.adapters.postgres.reports import PostgresReports
from app.domain.commands import CompleteSettlement
from app.domain.events import (
    DomainEvent,
    InvoiceEvent,
    PaymentConfirmed,
    PaymentDetected,
    PaymentOrphaned,
    SettlementCompleted,
    SettlementCreated,
)
from app.domain.policies import settlement_command_for
from app.domain.settlement import Settlement
from app.settings import Settings
from tests.support.processes import REPO_ROOT, VENV_BIN
from tests.unit.domain.factories import usdt
from tests.unit.live.scenario import Scenario
from web.exports_api import SETTLEMENTS_HEADER, settlement_cells

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

DATABASE_URL = Settings.from_env().database_url


@pytest.fixture
async def pool() -> AsyncIterator[Any]:
    async with aiopg.create_pool(DATABASE_URL, minsize=1, maxsize=4) as pool:
        yield pool


def settled(scenario: Scenario) -> list[DomainEvent]:
    """The settlement of a paid invoice, created and credited, as the settlement agent does."""
    paid = [e for e in scenario.events if e.event_type == "InvoicePaid"]
    if not paid:
        return []
    command = settlement_command_for(paid[-1])
    assert command is not None
    [created] = Settlement.create(command)
    settlement = Settlement.replay([created])
    completed = settlement.decide(
        CompleteSettlement(
            command_id=f"complete-{command.settlement_id}",
            settlement_id=command.settlement_id,
            completed_at=command.created_at + timedelta(seconds=1),
            reference="ledger:1",
        )
    )
    return [created, *completed]


def mixed_run(merchant_id: str) -> list[DomainEvent]:
    """Every kind of invoice history, with unique ids, all of ``merchant_id``."""
    tag = secrets.token_hex(6)
    base = secrets.randbelow(2**60) * 16  # transaction hashes no other run uses

    def scenario(name: str, amount: str) -> Scenario:
        return Scenario(invoice_id=f"inv_rm_{tag}_{name}", amount=amount)

    paid = scenario("paid", "9.99")
    paid.pay("9.99", n=base + 1)
    overpaid = scenario("overpaid", "5")
    overpaid.pay("6", n=base + 2)
    underpaid = scenario("underpaid", "20")
    underpaid.pay("5", n=base + 3)
    underpaid.expire()
    expired = scenario("expired", "7")
    expired.expire()
    cancelled = scenario("cancelled", "8")
    cancelled.cancel()
    reorged = scenario("reorged", "150")  # 12 confirmations
    first = reorged.pay("150", n=base + 4)
    reorged.confirmations(first, 3)
    reorged.orphan(first)
    again = reorged.pay("150", n=base + 5, block=reorged._blocks[first] + 2)
    reorged.confirmations(again, 12)
    pending = scenario("pending", "3")

    events: list[DomainEvent] = []
    for each in (paid, overpaid, underpaid, expired, cancelled, reorged, pending):
        events += each.events + settled(each)
    return [e.model_copy(update={"merchant_id": merchant_id}) for e in events]


def expected_dashboard(events: list[DomainEvent]) -> dict[str, Any]:
    """The merchant's row, computed from the events alone."""
    latest: dict[str, InvoiceEvent] = {}
    for event in events:
        if isinstance(event, InvoiceEvent):
            known = latest.get(event.aggregate_id)
            if known is None or known.aggregate_version < event.aggregate_version:
                latest[event.aggregate_id] = event
    statuses = [
        "pending" if e.event_type == "InvoiceCreated" else str(e.data.status)  # type: ignore[attr-defined]
        for e in latest.values()
    ]
    exceptions = [
        None if e.event_type == "InvoiceCreated" else e.data.payment_exception  # type: ignore[attr-defined]
        for e in latest.values()
    ]
    created = [e for e in events if isinstance(e, SettlementCreated)]
    completed = [e for e in events if isinstance(e, SettlementCompleted)]
    return {
        "invoices_created": sum(e.event_type == "InvoiceCreated" for e in events),
        **{f"invoices_{s}": statuses.count(s) for s in ("pending", "confirming", "paid")},
        **{f"invoices_{s}": statuses.count(s) for s in ("expired", "cancelled")},
        **{
            f"invoices_{x}": sum(str(e) == x for e in exceptions) for x in ("underpaid", "overpaid")
        },
        "gross_volume": sum(e.data.gross_amount for e in created),
        "fees": sum(e.data.platform_fee_amount for e in created),
        "net_volume": sum(e.data.net_amount for e in created),
        "balance": sum(e.data.net_amount for e in completed),
        "settlements": len(created),
    }


DASHBOARD_COLUMNS = (
    "invoices_created",
    "invoices_pending",
    "invoices_confirming",
    "invoices_paid",
    "invoices_expired",
    "invoices_cancelled",
    "invoices_underpaid",
    "invoices_overpaid",
    "gross_volume",
    "fees",
    "net_volume",
    "balance",
    "settlements",
)


async def dashboard(pool: Any, merchant_id: str) -> dict[str, Any] | None:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            f"SELECT {', '.join(DASHBOARD_COLUMNS)}, paid_with_time, ms_to_paid_total"  # noqa: S608 - constants
            " FROM merchant_dashboard WHERE merchant_id = %s",
            (merchant_id,),
        )
        row = await cur.fetchone()
    return (
        None
        if row is None
        else dict(zip((*DASHBOARD_COLUMNS, "paid_with_time", "ms_to_paid"), row, strict=True))
    )


async def payment_stats(pool: Any, day: Any) -> tuple[int, ...]:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT payments_detected, payments_confirmed, payments_failed, payments_orphaned"
            " FROM payment_confirmation_stats WHERE day = %s",
            (day,),
        )
        row = await cur.fetchone()
    return tuple(row) if row else (0, 0, 0, 0)


async def project(pool: Any, events: list[DomainEvent], size: int = 7) -> None:
    """In batches of ``size``, as the projection agent reads them."""
    for start in range(0, len(events), size):
        batch = events[start : start + size]
        await projections.apply_batch(pool, [(e, 0, start + i) for i, e in enumerate(batch)])


async def test_a_mixed_run_is_folded_into_the_merchant_dashboard_once(pool: Any) -> None:
    merchant_id = f"mer_rm_{secrets.token_hex(8)}"
    events = mixed_run(merchant_id)
    day = events[0].occurred_at.date()
    stats_before = await payment_stats(pool, day)

    await project(pool, events)
    row = await dashboard(pool, merchant_id)
    assert row is not None
    expected = expected_dashboard(events)
    assert {k: row[k] for k in DASHBOARD_COLUMNS} == expected
    assert expected["invoices_paid"] == 3 and expected["settlements"] == 3  # the run is mixed
    assert expected["invoices_underpaid"] == expected["invoices_overpaid"] == 1
    assert row["paid_with_time"] == 3

    # Redelivered whole, in other batches: nothing counts twice.
    await project(pool, events, size=11)
    assert await dashboard(pool, merchant_id) == row

    detected = len({e.aggregate_id for e in events if isinstance(e, PaymentDetected)})
    confirmed = sum(isinstance(e, PaymentConfirmed) for e in events)
    orphaned = sum(isinstance(e, PaymentOrphaned) for e in events)
    stats_after = await payment_stats(pool, day)
    moved = tuple(after - before for after, before in zip(stats_after, stats_before, strict=True))
    assert moved == (detected, confirmed, 0, orphaned)
    assert (detected, orphaned) == (5, 1)  # the reorged payment is one payment, detected once


async def test_daily_metrics_and_platform_revenue_follow_the_settlements(pool: Any) -> None:
    merchant_id = f"mer_rm_{secrets.token_hex(8)}"
    events = mixed_run(merchant_id)
    settlements = [e for e in events if isinstance(e, SettlementCreated)]
    day = settlements[0].occurred_at.date()

    async def revenue() -> tuple[int, ...]:
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT settlements, gross_volume, fees, net_volume FROM platform_revenue_daily"
                " WHERE day = %s",
                (day,),
            )
            row = await cur.fetchone()
        return tuple(row) if row else (0, 0, 0, 0)

    before = await revenue()
    await project(pool, events)
    after = await revenue()
    gross = sum(e.data.gross_amount for e in settlements)
    fees = sum(e.data.platform_fee_amount for e in settlements)
    assert tuple(a - b for a, b in zip(after, before, strict=True)) == (
        3,
        gross,
        fees,
        gross - fees,
    )

    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT day, gross_volume, fees, net_volume, settlements, invoices_created,"
            " invoices_paid, invoices_expired FROM daily_settlement_metrics"
            " WHERE merchant_id = %s ORDER BY day",
            (merchant_id,),
        )
        rows = await cur.fetchall()
    assert sum(r[4] for r in rows) == 3
    assert (sum(r[1] for r in rows), sum(r[2] for r in rows)) == (gross, fees)
    assert sum(r[3] for r in rows) == gross - fees
    assert (sum(r[5] for r in rows), sum(r[6] for r in rows), sum(r[7] for r in rows)) == (7, 3, 2)
    assert gross == usdt("9.99") + usdt("6") + usdt("150")  # micro-USDT, as the events state


async def test_invoice_summaries_carry_the_tx_hashes_and_confirmations(pool: Any) -> None:
    merchant_id = f"mer_rm_{secrets.token_hex(8)}"
    events = mixed_run(merchant_id)
    await project(pool, events)
    reorged_id = next(e.aggregate_id for e in events if e.aggregate_id.endswith("_reorged"))
    detected = [
        e for e in events if isinstance(e, PaymentDetected) and e.data.invoice_id == reorged_id
    ]
    hashes = [e.data.tx_hash for e in detected]
    blocks = [e.data.block_number for e in detected]
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT status, tx_hashes, block_numbers, confirmations FROM invoice_summaries"
            " WHERE invoice_id = %s",
            (reorged_id,),
        )
        status, tx_hashes, block_numbers, confirmations = await cur.fetchone()
    assert (status, tx_hashes, confirmations) == ("paid", hashes, 12)
    assert block_numbers == blocks
    assert len(hashes) == 2  # the orphaned transfer and the one that paid


# --- rebuild ------------------------------------------------------------------------------------

REBUILT = (*READ_MODELS, *FOLD_STATE)


async def snapshot(pool: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every read model, in a stable order."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with pool.acquire() as conn, conn.cursor() as cur:
        for table in REBUILT:
            await cur.execute(f"SELECT * FROM public.{table}")  # noqa: S608 - constants
            tables[table] = sorted(await cur.fetchall(), key=repr)
    return tables


def differences(live: dict[str, list[Any]], rebuilt: dict[str, list[Any]]) -> dict[str, Any]:
    """Per table: how many rows differ, and the first few of each side."""
    found = {}
    for table in REBUILT:
        only_live = set(live[table]) - set(rebuilt[table])
        only_rebuilt = set(rebuilt[table]) - set(live[table])
        if only_live or only_rebuilt:
            found[table] = (sorted(only_live, key=repr)[:3], sorted(only_rebuilt, key=repr)[:3])
    return found


def hashable(tables: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """Rows with their lists (tx_hashes) and dicts (metadata) made comparable as set members."""
    return {
        table: [
            tuple(
                tuple(v) if isinstance(v, list) else repr(v) if isinstance(v, dict) else v
                for v in row
            )
            for row in rows
        ]
        for table, rows in tables.items()
    }


async def test_the_rebuilt_read_models_equal_the_live_ones_row_for_row(pool: Any) -> None:
    rebuild = ReadModelRebuild(pool, batch=2_000)
    await rebuild.rebuild()  # whatever the database held, now folded by this version

    merchant_id = f"mer_rm_{secrets.token_hex(8)}"
    await project(pool, mixed_run(merchant_id))
    await project(pool, mixed_run(merchant_id), size=5)  # another mixed run, same merchant
    live = hashable(await snapshot(pool))
    assert any(row[0] == merchant_id for row in live["merchant_dashboard"])

    report = await rebuild.rebuild()
    rebuilt = hashable(await snapshot(pool))
    assert differences(live, rebuilt) == {}
    assert all(live[table] == rebuilt[table] for table in REBUILT)  # row for row
    assert report.read_models == list(READ_MODELS)
    assert report.rows == {table: len(rebuilt[table]) for table in REBUILT}
    assert report.events >= 2 * len(mixed_run(merchant_id))

    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'read_models_rebuild_%'"
        )
        assert await cur.fetchall() == []  # the rebuild's schema is gone
        await cur.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
            " AND tablename = 'invoice_summaries' ORDER BY indexname"
        )
        indexes = [row[0] for row in await cur.fetchall()]
    # The swapped-in table has the migration's index names, so later migrations find them.
    assert "invoice_summaries_merchant_created_idx" in indexes
    assert "invoice_summaries_pkey" in indexes


async def test_events_projected_during_a_rebuild_are_caught_up_once(pool: Any) -> None:
    # The projection's transactions take their seq when they insert and may commit after a
    # later one: here one is held open while the rebuild reads past its events, and commits
    # once it has. The catch-up must apply exactly those events.
    held_merchant, other_merchant = (f"mer_rm_{secrets.token_hex(8)}" for _ in range(2))
    held_events = mixed_run(held_merchant)
    # Only creations: they touch their merchant's rows, not the day's platform-wide ones the
    # held transaction has locked.
    other_events = [
        e.model_copy(update={"merchant_id": other_merchant})
        for n in range(3)
        for e in Scenario(invoice_id=f"inv_rm_{secrets.token_hex(6)}_{n}").events
    ]
    async with aiopg.connect(DATABASE_URL) as held, held.cursor() as cur:
        await cur.execute("BEGIN")
        batch = [(e, 0, i) for i, e in enumerate(held_events)]
        await cur.execute(projections.batch_statements(cur, batch))  # inserted, not committed
        await project(pool, other_events)  # committed, with later seqs

        await cur.execute(
            "SELECT max(seq) FROM event_store WHERE event_id = ANY(%s::uuid[])",
            ([str(e.event_id) for e in held_events],),
        )
        (held_through,) = await cur.fetchone()  # the held transaction sees its own rows
        committed: list[int] = []

        async def commit_the_held_one(events: int, through_seq: int) -> None:
            # Once the replay has read past the held events (without them: not committed).
            if not committed and through_seq > held_through:
                await cur.execute("COMMIT")
                committed.append(through_seq)

        report = await ReadModelRebuild(pool, batch=2_000).rebuild(progress=commit_the_held_one)

    assert committed  # the held transaction committed between the rebuild's batches
    assert report.caught_up == len(held_events)  # the gap, filled in the swapping transaction
    for merchant_id, events in ((held_merchant, held_events), (other_merchant, other_events)):
        row = await dashboard(pool, merchant_id)
        assert row is not None
        assert {k: row[k] for k in DASHBOARD_COLUMNS} == expected_dashboard(events)

    # And what was swapped in is a true fold: another rebuild changes nothing.
    live = hashable(await snapshot(pool))
    await ReadModelRebuild(pool).rebuild()
    assert differences(live, hashable(await snapshot(pool))) == {}


async def test_only_the_named_read_model_is_swapped(pool: Any) -> None:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT 'public.invoice_summaries'::regclass::oid")
        summaries_before = (await cur.fetchone())[0]
        await cur.execute("SELECT 'public.merchant_dashboard'::regclass::oid")
        dashboard_before = (await cur.fetchone())[0]
    report = await ReadModelRebuild(pool).rebuild(["merchant_dashboard"])
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT 'public.invoice_summaries'::regclass::oid")
        assert (await cur.fetchone())[0] == summaries_before  # untouched
        await cur.execute("SELECT 'public.merchant_dashboard'::regclass::oid")
        assert (await cur.fetchone())[0] != dashboard_before  # a new table
    assert sorted(report.rows) == sorted(["merchant_dashboard", *FOLD_STATE])
    with pytest.raises(UnknownReadModel, match="no read model named invoices"):
        await ReadModelRebuild(pool).rebuild(["invoices"])


def test_the_operator_command_rebuilds_and_refuses_an_unknown_name() -> None:
    env = {**os.environ}
    command = [str(VENV_BIN / "checkout"), "rebuild-read-models"]
    refused = subprocess.run(
        [*command, "--only", "invoices"], capture_output=True, text=True, cwd=REPO_ROOT,
        env=env, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "no read model named invoices" in refused.stderr
    done = subprocess.run(
        [*command, "--only", "platform_revenue_daily"], capture_output=True, text=True,
        cwd=REPO_ROOT, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["read_models"] == ["platform_revenue_daily"]
    assert body["rows"]["platform_revenue_daily"] >= 1
    assert body["events"] >= 1


# --- the reports API's adapter --------------------------------------------------------------------


async def test_the_reports_read_what_the_fold_and_the_ledger_hold(pool: Any) -> None:
    merchant_id = f"mer_rm_{secrets.token_hex(8)}"
    events = mixed_run(merchant_id)
    confirming = Scenario(invoice_id=f"inv_rm_{secrets.token_hex(6)}_open", amount="150")
    confirming.pay("150", n=secrets.randbelow(2**60) * 16 + 9)  # needs 12 confirmations
    events += [e.model_copy(update={"merchant_id": merchant_id}) for e in confirming.events]
    await project(pool, events)
    settlements = [e for e in events if isinstance(e, SettlementCreated)]
    ledger = PostgresLedger(pool)
    for created in settlements:  # booked as the settlement agent books them
        await ledger.book_settlement(Settlement.replay([created]))

    reports = PostgresReports(pool)
    summary = await reports.summary(merchant_id)
    assert summary is not None
    expected = expected_dashboard(events)
    assert {k: summary[k] for k in DASHBOARD_COLUMNS} == expected
    assert (summary["invoices_confirming"], summary["invoices_created"]) == (1, 8)
    assert await reports.summary(f"mer_rm_{secrets.token_hex(8)}") is None

    day = settlements[0].occurred_at.date()
    [today] = await reports.daily(merchant_id, day, day)
    assert (today["day"], today["settlements"], today["invoices_created"]) == (day, 3, 8)
    assert await reports.daily(merchant_id, day + timedelta(days=1), day + timedelta(days=9)) == []

    [revenue] = await reports.platform_revenue(day, day)  # every merchant's: at least ours
    assert revenue["day"] == day and revenue["settlements"] >= 3

    balance = await reports.balance(merchant_id)
    assert balance == {
        "available": sum(e.data.net_amount for e in settlements),
        "incoming": usdt("150"),  # received on the confirming invoice, not yet credited
        "outgoing": 0,
    }


async def test_a_transfer_mined_again_after_a_reorg_keeps_its_place_with_its_new_block(
    pool: Any,
) -> None:
    scenario = Scenario(invoice_id=f"inv_rm_{secrets.token_hex(6)}_again", amount="150")
    base = secrets.randbelow(2**60) * 16
    first = scenario.pay("100", n=base + 1)
    scenario.pay("20", n=base + 2, block=scenario._blocks[first] + 1)
    scenario.orphan(first)
    merchant_id = f"mer_rm_{secrets.token_hex(8)}"
    events = [e.model_copy(update={"merchant_id": merchant_id}) for e in scenario.events]
    [detected, second] = [e for e in events if isinstance(e, PaymentDetected)]
    versions = [e.aggregate_version for e in events if e.aggregate_id == detected.aggregate_id]
    # The same transfer, found again in a later block (the payment's next version).
    again = detected.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "aggregate_version": max(versions) + 1,
            "data": detected.data.model_copy(
                update={"block_number": detected.data.block_number + 7}
            ),
        }
    )
    await project(pool, [*events, again])
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT tx_hashes, block_numbers FROM invoice_summaries WHERE invoice_id = %s",
            (scenario.invoice_id,),
        )
        tx_hashes, block_numbers = await cur.fetchone()
    assert tx_hashes == [detected.data.tx_hash, second.data.tx_hash]
    assert block_numbers == [detected.data.block_number + 7, second.data.block_number]


async def test_the_exports_page_through_every_row_with_the_payments_of_each(pool: Any) -> None:
    merchant_id = f"mer_rm_{secrets.token_hex(8)}"
    events = mixed_run(merchant_id)
    await project(pool, events)
    settlements = [e for e in events if isinstance(e, SettlementCreated)]
    ledger = PostgresLedger(pool)
    for created in settlements:
        await ledger.book_settlement(Settlement.replay([created]))
    day = settlements[0].occurred_at
    start, end = day - timedelta(days=1), day + timedelta(days=1)

    exports = PostgresExports(pool, page=2)  # 3 settlements and 7 invoices: several pages
    pages = [page async for page in exports.settlements(merchant_id, start, end)]
    assert [len(page) for page in pages] == [2, 1]
    rows = [row for page in pages for row in page]
    oldest_first = sorted(settlements, key=lambda e: (e.occurred_at, e.aggregate_id))
    assert [r["settlement_id"] for r in rows] == [e.aggregate_id for e in oldest_first]
    reorged = next(r for r in rows if r["invoice_id"].endswith("_reorged"))
    assert len(reorged["tx_hashes"]) == len(reorged["block_numbers"]) == 2
    assert reorged["gross_amount"] == usdt("150") and reorged["settled_at"] is not None

    cells = dict(zip(SETTLEMENTS_HEADER, settlement_cells(reorged), strict=True))
    fee = next(
        e.data.platform_fee_amount for e in settlements if e.data.invoice_id.endswith("_reorged")
    )
    assert Decimal(cells["platform_fee_amount"]) * 1_000_000 == fee  # the fee line, in USDT
    assert Decimal(cells["gross_amount"]) - Decimal(cells["platform_fee_amount"]) == Decimal(
        cells["net_amount"]
    )

    invoices = [row async for page in exports.invoices(merchant_id, start, end) for row in page]
    assert len(invoices) == 7
    assert await anext(exports.invoices(merchant_id, end, end + timedelta(days=1)), None) is None


async def test_an_invoice_paid_again_after_a_reorg_is_one_paid_invoice(pool: Any) -> None:
    # Paid after 1 confirmation and settled; a reorg took the transfer (the settlement is
    # reversed, the invoice reopened); the customer paid again: round 2, one paid invoice.
    scenario = Scenario(invoice_id=f"inv_rm_{secrets.token_hex(6)}_round2", amount="9.99")
    base = secrets.randbelow(2**60) * 16
    first = scenario.pay("9.99", n=base + 1)
    scenario.orphan(first)
    scenario.pay("9.99", n=base + 2, block=scenario._blocks[first] + 1)
    rounds = [e.data.settlement_round for e in scenario.events if e.event_type == "InvoicePaid"]
    assert rounds == [1, 2]  # what the domain emits, so what the fold must count once
    merchant_id = f"mer_rm_{secrets.token_hex(8)}"
    events = [e.model_copy(update={"merchant_id": merchant_id}) for e in scenario.events]

    await project(pool, events)

    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT sum(invoices_paid) FROM daily_settlement_metrics WHERE merchant_id = %s",
            (merchant_id,),
        )
        (paid,) = await cur.fetchone()
        await cur.execute(
            "SELECT paid_with_time FROM merchant_dashboard WHERE merchant_id = %s",
            (merchant_id,),
        )
        (timed,) = await cur.fetchone()
    assert (paid, timed) == (1, 1)
