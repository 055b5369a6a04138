"""Unmatched transfers on a real PostgreSQL (migrations/0029_unmatched_transfers.sql): the
projection records an UnmatchedTransferReceived once however often it is applied, and the
operator lists and resolves it with ``checkout chain unmatched`` as they would.

A PostgreSQL of the test's own: the event store is append-only, and these rows must not reach
the shared database's lists.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiopg
import psycopg2
import pytest
from click.testing import CliRunner, Result

from app.adapters.postgres import projections
from app.adapters.postgres.migrations import migrate
from app.domain.events import UnmatchedTransferReceived
from app.domain.observations import TransferObserved
from app.runtime.unmatched_commands import unmatched_group
from app.services.ports import Projected
from app.settings import Settings
from tests.support.postgres import throwaway_postgres
from tests.support.processes import REPO_ROOT, VENV_BIN

pytestmark = pytest.mark.integration

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
OURS = "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8"
CUSTOMER = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
BLOCK_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with throwaway_postgres() as database:
        migrate(database.url)
        yield database.url


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Any]:
    async with aiopg.create_pool(database_url, minsize=1, maxsize=2) as connections:
        yield connections


def transfer(amount: int, *, block: int = 70_000, minutes: int = 0) -> TransferObserved:
    return TransferObserved(
        tx_hash=secrets.token_hex(32),
        log_index=0,
        block_number=block,
        block_id=secrets.token_hex(32),
        block_timestamp=BLOCK_TIME + timedelta(minutes=minutes),
        contract_address=USDT,
        from_address=CUSTOMER,
        to_address=OURS,
        amount=amount,
    )


def sql(url: str, statement: str, *values: Any) -> list[tuple[Any, ...]]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(statement, values)
        return list(cur.fetchall())


def checkout(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``checkout chain unmatched <args>`` as the operator runs it: the real CLI, in a process."""
    return subprocess.run(
        [str(VENV_BIN / "checkout"), "chain", "unmatched", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "DATABASE_URL": url},
        timeout=120,
        check=False,
    )


def invoke(url: str, *args: str) -> Result:
    """The same command in this process (the real CLI takes seconds to start: Faust)."""
    settings = Settings.from_env({**os.environ, "DATABASE_URL": url})
    return CliRunner().invoke(unmatched_group(settings), list(args))


def answer(url: str, *args: str) -> Any:
    result = invoke(url, *args, "--json")
    assert result.exit_code == 0, f"{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


def refusal(url: str, *args: str) -> str:
    result = invoke(url, *args)
    assert result.exit_code == 2, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    assert result.stdout == ""
    assert result.stderr.startswith("checkout chain unmatched"), result.stderr
    return result.stderr


async def project(url: str, batch: list[Projected]) -> None:
    async with aiopg.create_pool(url, minsize=1, maxsize=1) as connections:
        await projections.apply_batch(connections, batch)


async def test_the_projection_records_an_unmatched_transfer_once(
    pool: Any, database_url: str
) -> None:
    seen = transfer(9_990_000)
    event = UnmatchedTransferReceived.of(seen, "not_a_deposit_address")
    again_elsewhere = UnmatchedTransferReceived.of(  # re-included in another block: same event
        seen.model_copy(update={"block_number": 70_002, "block_id": secrets.token_hex(32)}),
        "not_a_deposit_address",
    )

    await projections.apply(pool, event, 4, 10)
    await projections.apply(pool, event, 4, 10)  # redelivered
    await projections.apply_batch(pool, [(event, 4, 11), (again_elsewhere, 4, 12)])

    rows = sql(
        database_url,
        "SELECT tx_hash, log_index, block_number, block_id, amount, reason, invoice_id,"
        " merchant_id, event_id::text, resolved_at FROM unmatched_transfers"
        " WHERE transfer_id = %s",
        seen.transfer_id,
    )
    assert rows == [
        (
            seen.tx_hash,
            0,
            70_000,
            seen.block_id,
            9_990_000,
            "not_a_deposit_address",
            None,
            None,
            str(event.event_id),
            None,
        )
    ]
    stored = sql(
        database_url,
        "SELECT count(*) FROM event_store WHERE aggregate_type = 'transfer' AND aggregate_id = %s",
        seen.transfer_id,
    )
    assert stored == [(1,)]


def test_the_operator_lists_and_resolves_unmatched_transfers(database_url: str) -> None:
    sql(database_url, "DELETE FROM unmatched_transfers RETURNING 1")
    stray = transfer(1, minutes=1)
    late = transfer(250_500_000, block=70_100, minutes=30)
    batch: list[Projected] = [
        (UnmatchedTransferReceived.of(stray, "not_a_deposit_address"), 0, 1),
        (
            UnmatchedTransferReceived.of(
                late, "after_monitoring_window", invoice_id="inv_late", merchant_id="mer_9"
            ),
            1,
            1,
        ),
    ]
    asyncio.run(project(database_url, batch))

    listed = answer(database_url)
    assert [row["transfer_id"] for row in listed["data"]] == [late.transfer_id, stray.transfer_id]
    assert listed["total"] == {
        "transfers": 2,
        "amount": "250.500001",
        "open_transfers": 2,
        "open_amount": "250.500001",
    }
    assert listed["data"][0]["invoice_id"] == "inv_late"
    assert listed["data"][0]["amount"] == "250.5"
    only_late = answer(database_url, "--reason", "after_monitoring_window")
    assert [row["transfer_id"] for row in only_late["data"]] == [late.transfer_id]
    since = answer(database_url, "--since", "2026-03-01T12:10:00")
    assert [row["transfer_id"] for row in since["data"]] == [late.transfer_id]

    text = checkout(database_url)  # the real `checkout` finds the command under `chain`
    assert text.returncode == 0, text.stderr
    assert "250.500000" in text.stdout and "0.000001" in text.stdout
    assert "total: 2 transfers, 250.500001 USDT; open: 2, 250.500001 USDT" in text.stdout

    resolved = answer(
        database_url, "resolve", late.transfer_id, "--note", "refunded to the sender, ticket 42"
    )
    assert resolved["resolved_by"] == "operator"
    assert resolved["resolution_note"] == "refunded to the sender, ticket 42"
    assert resolved["resolved_at"] is not None
    still_open = answer(database_url, "--open")
    assert [row["transfer_id"] for row in still_open["data"]] == [stray.transfer_id]
    assert still_open["total"]["open_amount"] == "0.000001"

    assert "was resolved at" in refusal(database_url, "resolve", late.transfer_id, "--note", "x")
    assert "not a transfer id" in refusal(database_url, "resolve", "abc:1", "--note", "x")
    unknown = f"{'0' * 64}:0"
    assert "no unmatched transfer" in refusal(database_url, "resolve", unknown, "--note", "x")
    assert "control characters" in refusal(
        database_url, "resolve", stray.transfer_id, "--note", "done\x1b[2J"
    )
    assert "at most 500" in refusal(database_url, "resolve", stray.transfer_id, "--note", "x" * 501)
    assert "filter the list" in refusal(
        database_url, "--open", "resolve", stray.transfer_id, "--note", "x"
    )
    [(note,)] = sql(
        database_url,
        "SELECT resolution_note FROM unmatched_transfers WHERE transfer_id = %s",
        late.transfer_id,
    )
    assert note == "refunded to the sender, ticket 42"  # the first resolution stands
    audit = sql(
        database_url,
        "SELECT result, target_id FROM audit_log WHERE action = 'cli chain unmatched resolve'"
        " ORDER BY entry_id",
    )
    assert audit[0] == ("ok", late.transfer_id)
    assert [result for result, _ in audit[1:]] == ["refused", "refused"]  # resolved, unknown
