"""Chain watcher catch-up rate against the Tron node simulator.

Starts a simulator (manual mining) on a free port, builds BLOCKS blocks of PER_BLOCK USDT transfers
through its batch endpoint, then times a fresh watcher catching up from block 1 — with the
in-memory store and with the PostgreSQL store — and, as the baseline, the same
getblockbynum + gettransactioninfobyblocknum calls with the same concurrency and no decoding,
no store and no publishing. Prints the median of RUNS runs:

    .venv/bin/python bench/bench_watcher.py [--blocks 200] [--per-block 100] [--runs 3]

PostgreSQL comes from DATABASE_URL (default the local one of scripts/infra.sh); --no-postgres
skips that part. Figures depend on the machine: compare the ratio to the raw pass-through.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from app.adapters.postgres.chain_cursor import PostgresWatcherStore  # noqa: E402
from app.adapters.tron.address_filter import MemoryDepositAddressFilter  # noqa: E402
from app.adapters.tron.addresses import account_id, from_word  # noqa: E402
from app.adapters.tron.deposit_addresses import derive_deposit_address  # noqa: E402
from app.adapters.tron.node import TronNode  # noqa: E402
from app.adapters.tron.settings import DEV_XPUB, MAINNET_USDT  # noqa: E402
from app.adapters.tron.store import MemoryWatcherStore, WatcherStore  # noqa: E402
from app.adapters.tron.watcher import ChainWatcher  # noqa: E402
from app.domain.observations import Observation, TransferObserved  # noqa: E402
from tests.support.tron_sim import SimulatorDidNotStart, launch_simulator  # noqa: E402

DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql://checkout:checkout@127.0.0.1:5432/checkout"
)
BENCH_WATCHER = "bench-watcher"
# Every transfer of the bench chain pays one of these, and the watcher is told they are ours (in
# memory: the PostgreSQL filter's one query per block is not part of this measurement).
DEPOSIT_ADDRESSES = [derive_deposit_address(DEV_XPUB, i) for i in range(50)]


def start_simulator(log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    try:
        return launch_simulator(log_path)
    except SimulatorDidNotStart as exc:
        raise SystemExit(str(exc)) from None


async def build_chain(url: str, blocks: int, per_block: int) -> int:
    addresses = DEPOSIT_ADDRESSES
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        for start in range(0, blocks, 20):
            count = min(20, blocks - start)
            transfers = [
                {"to": addresses[i % len(addresses)], "amount": f"{1 + i % 997}.25"}
                for i in range(count * per_block)
            ]
            response = await client.post(
                "/sim/transfers",
                json={"transfers": transfers, "mine": True, "per_block": per_block},
            )
            response.raise_for_status()
        status = (await client.get("/sim/status")).json()
    return int(status["head"]["number"])


async def raw_pass_through(url: str, head: int, concurrency: int) -> float:
    """The same two calls per block, pipelined the same way, bodies read but not decoded."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def fetch(number: int) -> int:
            body = {"num": number, "visible": True}
            block, infos = await asyncio.gather(
                client.post("/wallet/getblockbynum", json=body),
                client.post("/wallet/gettransactioninfobyblocknum", json=body),
            )
            return len(block.content) + len(infos.content)

        started = time.perf_counter()
        pending: list[asyncio.Task[int]] = []
        next_number = 1
        while next_number <= head or pending:
            while len(pending) < concurrency and next_number <= head:
                pending.append(asyncio.create_task(fetch(next_number)))
                next_number += 1
            await pending.pop(0)
        return time.perf_counter() - started


class Counter:
    def __init__(self) -> None:
        self.transfers = 0

    async def __call__(self, observations: Sequence[Observation]) -> None:
        self.transfers += sum(isinstance(o, TransferObserved) for o in observations)


async def watcher_catch_up(
    url: str, head: int, store: WatcherStore, concurrency: int
) -> tuple[float, int]:
    counter = Counter()
    # Start cold: the address caches would otherwise make every run after the first cheaper.
    account_id.cache_clear()
    from_word.cache_clear()
    async with TronNode(url, request_timeout=30) as node:
        watcher = ChainWatcher(
            node,
            store,
            counter,
            MAINNET_USDT,
            deposit_addresses=MemoryDepositAddressFilter(DEPOSIT_ADDRESSES),
            start_height=1,
            fetch_concurrency=concurrency,
        )
        started = time.perf_counter()
        processed = await watcher.poll()
        elapsed = time.perf_counter() - started
    if processed != head:
        raise SystemExit(f"the watcher processed {processed} blocks, expected {head}")
    return elapsed, counter.transfers


async def fresh_postgres_store() -> tuple[Any, PostgresWatcherStore]:
    import aiopg

    pool = await aiopg.create_pool(DATABASE_URL, minsize=1, maxsize=4)
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "DELETE FROM chain_watcher_blocks WHERE watcher_name = %s", (BENCH_WATCHER,)
        )
        await cur.execute(
            "DELETE FROM chain_watcher_cursor WHERE watcher_name = %s", (BENCH_WATCHER,)
        )
    return pool, PostgresWatcherStore(pool, watcher_name=BENCH_WATCHER)


async def median_of(runs: int, once: Callable[[], Awaitable[float]]) -> float:
    return statistics.median([await once() for _ in range(runs)])


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_simulator(Path(tmp) / "sim.log")
        try:
            await run(args, url)
        finally:
            process.terminate()
            process.wait(timeout=30)


async def run(args: argparse.Namespace, url: str) -> None:
    started = time.perf_counter()
    head = await build_chain(url, args.blocks, args.per_block)
    total = args.blocks * args.per_block
    print(
        f"chain: {head} blocks, {total} USDT transfers "
        f"(built in {time.perf_counter() - started:.1f} s); concurrency {args.concurrency}; "
        f"median of {args.runs} runs"
    )

    raw = await median_of(args.runs, lambda: raw_pass_through(url, head, args.concurrency))
    report("raw HTTP pass-through", raw, head, total, raw)

    async def memory_once() -> float:
        elapsed, seen = await watcher_catch_up(url, head, MemoryWatcherStore(), args.concurrency)
        assert seen == total, f"saw {seen} transfers, expected {total}"
        return elapsed

    report("watcher, memory store", await median_of(args.runs, memory_once), head, total, raw)

    if args.no_postgres:
        return

    async def postgres_once() -> float:
        pool, store = await fresh_postgres_store()
        try:
            elapsed, seen = await watcher_catch_up(url, head, store, args.concurrency)
        finally:
            pool.close()
            await pool.wait_closed()
        assert seen == total, f"saw {seen} transfers, expected {total}"
        return elapsed

    report("watcher, PostgreSQL store", await median_of(args.runs, postgres_once), head, total, raw)


def report(label: str, seconds: float, blocks: int, transfers: int, raw: float) -> None:
    print(
        f"{label:28s} {seconds:7.2f} s  {blocks / seconds:9.1f} blocks/s  "
        f"{transfers / seconds:10.1f} transfers/s  ratio to raw {raw / seconds:5.2f}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=200)
    parser.add_argument("--per-block", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-postgres", action="store_true")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
