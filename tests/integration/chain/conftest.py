"""The real simulator process and the real PostgreSQL for the chain tests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiopg
import httpx
import psycopg2  # type: ignore[import-untyped]
import pytest

from app.adapters.tron.node import TronNode
from app.runtime.retry import RetryPolicy
from tests.support.tron_sim import launch_simulator

REPO_ROOT = Path(__file__).resolve().parents[3]
DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql://checkout:checkout@127.0.0.1:5432/checkout"
)
MIGRATIONS = ("0002_chain_watcher.sql", "0003_deposit_addresses.sql")


class Simulator:
    """The simulator's /sim/ control API (tests only; the platform never calls it)."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.url = url
        self.process = process
        self.log_path = log_path

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as client:
            response = await client.post(path, json=body or {})
        assert response.status_code == 200, response.text
        return response.json()

    async def mine(self, blocks: int = 1) -> Any:
        return await self.post("/sim/mine", {"blocks": blocks})

    async def transfer(self, to: str, amount: str, **options: Any) -> Any:
        return await self.post("/sim/transfer", {"to": to, "amount": amount, **options})

    async def reorg(self, depth: int, **options: Any) -> Any:
        return await self.post("/sim/reorg", {"depth": depth, **options})


def start_simulator(log_path: Path) -> Simulator:
    process, url = launch_simulator(log_path)
    return Simulator(url, process, log_path)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    simulator = start_simulator(tmp_path / "tron-sim.log")
    yield simulator
    simulator.process.terminate()
    simulator.process.wait(timeout=30)


@pytest.fixture
async def node(sim: Simulator) -> AsyncIterator[TronNode]:
    async with TronNode(sim.url, request_timeout=10.0, retry=RetryPolicy(attempts=3)) as client:
        yield client


def _ensure_schema() -> None:
    """Apply the chain migrations when the runner has not (they are idempotent)."""
    try:
        conn = psycopg2.connect(DATABASE_URL, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at DATABASE_URL ({exc}); start it with "
            "`bash scripts/infra.sh up postgres`",
            pytrace=False,
        )
    try:
        with conn, conn.cursor() as cur:
            for name in MIGRATIONS:
                cur.execute((REPO_ROOT / "migrations" / name).read_text())
            cur.execute(
                "TRUNCATE chain_watcher_transfers, chain_watcher_blocks, chain_watcher_cursor,"
                " deposit_addresses"
            )
    finally:
        conn.close()


@pytest.fixture
async def pg_pool() -> AsyncIterator[Any]:
    _ensure_schema()
    pool = await aiopg.create_pool(DATABASE_URL, minsize=1, maxsize=4)
    try:
        yield pool
    finally:
        pool.close()
        await pool.wait_closed()
