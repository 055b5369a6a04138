"""The whole platform for end-to-end tests: a Tron simulator, two workers, a merchant.

Each platform gets its own topic namespace, consumer group and chain-watcher cursor, so it shares
Kafka and PostgreSQL with anything else running without reading anyone else's messages. The
simulator runs in manual mode: blocks appear only when a test mines them, so confirmations are
counted exactly.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg2

from app.settings import Settings
from tests.support.processes import (
    REPO_ROOT,
    VENV_BIN,
    ManagedProcess,
    WorkerProcess,
    eventually,
    free_port,
    wait_http_ok,
    worker_processes,
)

T = TypeVar("T")


@dataclass
class Simulator:
    url: str
    process: ManagedProcess

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.post(self.url + path, json=body or {}, timeout=30)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        return response.json()

    def pay(self, address: str, amount: str, **extra: Any) -> str:
        """Send USDT from the simulator's funded wallet; included in the next mined block."""
        return str(self.post("/sim/transfer", {"to": address, "amount": amount, **extra})["txid"])

    def mine(self, blocks: int = 1) -> Any:
        return self.post("/sim/mine", {"blocks": blocks})

    def status(self) -> Any:
        return httpx.get(self.url + "/sim/status", timeout=10).json()


@contextmanager
def simulator() -> Iterator[Simulator]:
    port = free_port()
    proc = ManagedProcess(
        "tron-sim",
        [sys.executable, "-m", "tron_sim", "--port", str(port), "--manual"],
        {},
        REPO_ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/sim/status", proc, timeout=30)
        yield Simulator(url, proc)
    finally:
        proc.stop()


@dataclass
class Platform:
    sim: Simulator
    namespace: str
    worker_urls: list[str]
    internal_urls: list[str]
    api_key: str
    merchant_id: str
    other_api_key: str
    workers: list[WorkerProcess] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # what the workers run with (for the CLI)
    other_merchant_id: str = ""

    @property
    def url(self) -> str:
        return self.worker_urls[0]

    def headers(self, api_key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key or self.api_key}"}

    def create_invoice(self, amount: str, url: str | None = None, **fields: Any) -> dict[str, Any]:
        response = httpx.post(
            f"{url or self.url}/api/v1/invoices",
            json={"amount": amount, **fields},
            headers=self.headers(),
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def invoice(self, invoice_id: str, url: str | None = None) -> dict[str, Any]:
        response = httpx.get(
            f"{url or self.url}/api/v1/invoices/{invoice_id}", headers=self.headers(), timeout=30
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def settlement(self, invoice_id: str) -> dict[str, Any] | None:
        response = httpx.get(
            f"{self.url}/api/v1/invoices/{invoice_id}/settlement",
            headers=self.headers(),
            timeout=30,
        )
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return dict(response.json())

    def public(self, invoice_id: str) -> httpx.Response:
        return httpx.get(f"{self.url}/api/v1/public/invoice/{invoice_id}", timeout=30)

    def wait_invoice(
        self,
        invoice_id: str,
        check: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = 60,
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            invoice = self.invoice(invoice_id)
            return invoice if check(invoice) else None

        return self._eventually(probe, what, timeout)

    def wait_expired(self, invoice: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        """The invoice once expired. Expiry waits for the chain: the simulator mines only when
        told, so once the invoice's time is up a block is mined (stamped now, past
        ``expires_at``), again every 3 s until the platform has processed it and expired."""
        expires_at = datetime.fromisoformat(invoice["expires_at"].replace("Z", "+00:00"))
        mined_at = 0.0

        def probe() -> dict[str, Any] | None:
            nonlocal mined_at
            current = self.invoice(invoice["id"])
            if current["status"] == "expired":
                return current
            if datetime.now(UTC) > expires_at and time.monotonic() - mined_at > 3:
                self.sim.mine(1)
                mined_at = time.monotonic()
            return None

        return self._eventually(probe, f"invoice {invoice['id']} expired", timeout)

    def wait_settlement_status(
        self, invoice_id: str, status: str, timeout: float = 60
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            settlement = self.settlement(invoice_id)
            return settlement if settlement is not None and settlement["status"] == status else None

        return self._eventually(probe, f"settlement of {invoice_id} {status}", timeout)

    def wait_settlement(self, invoice_id: str, timeout: float = 60) -> dict[str, Any]:
        return self._eventually(
            lambda: self.settlement(invoice_id), f"settlement of {invoice_id}", timeout
        )

    def _eventually(self, probe: Callable[[], T | None], what: str, timeout: float) -> T:
        try:
            return eventually(probe, timeout=timeout, what=what, every=0.2)
        except AssertionError as exc:
            logs = "\n".join(f"--- {w.name} ---\n{w.log_tail(25)}" for w in self.workers)
            raise AssertionError(f"{exc}\n{logs}") from None

    def pay_and_confirm(self, invoice: dict[str, Any], amount: str, blocks: int = 1) -> str:
        txid = self.sim.pay(invoice["deposit_address"], amount)
        self.sim.mine(blocks)
        return txid


def run_cli(platform: Platform, *args: str, stdin: str = "") -> dict[str, Any]:
    """``checkout <args>`` with the platform's settings; its JSON answer (it must succeed)."""
    result = subprocess.run(
        [str(VENV_BIN / "checkout"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**platform.env},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def create_merchant(name: str, env: dict[str, str], *extra: str) -> dict[str, Any]:
    return merchant_created(start_merchant(name, env, *extra))


def start_merchant(name: str, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    """``checkout create-merchant`` started, not awaited: ``merchant_created`` reads its answer."""
    return subprocess.Popen(
        [str(VENV_BIN / "checkout"), "create-merchant", "--name", name, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**env},
    )


def merchant_created(process: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    return dict(json.loads(stdout))


WORKER_URL = "WORKER"


def platform_env(
    namespace: str, sim: Simulator, data_dir: Path, **overrides: str
) -> dict[str, str]:
    return {
        "CHECKOUT_APP_ID": namespace,
        "CHECKOUT_TOPIC_NAMESPACE": namespace,
        "CHECKOUT_DATA_DIR": str(data_dir),
        "TRON_NODE_URL": sim.url,
        "TRON_WATCHER_NAME": namespace,
        "TRON_POLL_INTERVAL": "0.2",
        "INVOICE_MIN_EXPIRES_IN": "10",
        "INVOICE_EXPIRY_GRACE": "0",
        # The payment tests create and read at will; the edge tests set the limits they test.
        "RATE_LIMIT_IP": "1000000/minute",
        "RATE_LIMIT_GLOBAL": "1000000/second",
        "RATE_LIMIT_INVOICE_CREATE": "1000000/hour",
        "RATE_LIMIT_READS": "1000000/hour",
        # One client address opens every WebSocket of the tests and the benchmarks.
        "LIVE_CONNECTIONS_PER_IP": "10000",
        # The day's figures on crypto-checkout.analytics every 2 s instead of 5 minutes.
        "ANALYTICS_INTERVAL": "2",
        # No sweeps unless a test asks (tests/integration/sweeps, on a database of its own): the
        # shared database's books hold settled addresses of other runs' simulators.
        "SWEEP_MIN_USDT": "1000000000",
        **overrides,
    }


def wait_ready(url: str, proc: ManagedProcess, timeout: float = 90) -> None:
    def probe() -> bool:
        if not proc.alive():
            raise AssertionError(f"{proc.name} exited:\n{proc.log_tail()}")
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200

    try:
        eventually(probe, timeout=timeout, what=f"{url}/readyz", every=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{proc.log_tail()}") from None


@contextmanager
def running_platform(
    data_dir: Path,
    workers: int = 2,
    *,
    node_url: Callable[[Simulator], str] | None = None,
    **overrides: str,
) -> Iterator[Platform]:
    """``node_url`` gives the workers' TRON_NODE_URL for the simulator (by default its own URL;
    the fault suite puts a forwarder it can freeze in between)."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    with ExitStack() as stack:
        sim = stack.enter_context(simulator())
        env = platform_env(namespace, sim, data_dir, **overrides)
        if node_url is not None:
            env["TRON_NODE_URL"] = node_url(sim)
        # Last, after the workers stopped: a namespace's 20-odd topics of 3 to 12 partitions each
        # would pile up over repeated runs until the local broker struggles. Set
        # CHECKOUT_TEST_KEEP_TOPICS=1 to keep them for reading after a failure.
        if not os.environ.get("CHECKOUT_TEST_KEEP_TOPICS"):
            stack.callback(delete_namespace_topics, namespace)
        ports = [free_port() for _ in range(workers)]
        # PUBLIC_URL=WORKER: each worker's own address (what Telegram's webhook is told).
        own_url = env.get("PUBLIC_URL") == WORKER_URL
        if own_url:  # the CLI and the tests: the first worker's
            env["PUBLIC_URL"] = f"http://127.0.0.1:{ports[0]}"
        # The merchants are created on PostgreSQL by the CLI while the workers start.
        merchants = [start_merchant(name, env) for name in ("Test Shop", "Other Shop")]
        for process in merchants:  # a worker that failed to start leaves none behind
            stack.callback(lambda process=process: process.poll() is None and process.kill())
        procs = stack.enter_context(
            worker_processes(
                [
                    (
                        f"worker-{port}",
                        {
                            **env,
                            "WEB_PORT": str(port),
                            **({"PUBLIC_URL": f"http://127.0.0.1:{port}"} if own_url else {}),
                        },
                    )
                    for port in ports
                ]
            )
        )
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url, proc in zip(urls, procs, strict=True):
            wait_ready(url, proc)
        shop, other = (merchant_created(process) for process in merchants)
        # The watcher starts at the head it first sees: make sure it has seen the chain before
        # any test pays, or a payment mined before its first poll would be behind its cursor.
        # (A fixed sleep was not enough on a busy machine: a test's first payment went unseen.)
        sim.mine(1)
        head = int(sim.status()["head"]["number"])
        eventually(
            lambda: (watched := watcher_cursor(env)) is not None and watched >= head,
            timeout=60,
            what=f"the chain watcher of {namespace} to reach block {head}",
            every=0.2,
        )
        yield Platform(
            sim=sim,
            namespace=namespace,
            worker_urls=urls,
            internal_urls=[proc.internal_url for proc in procs],
            api_key=shop["api_key"],
            merchant_id=shop["merchant_id"],
            other_api_key=other["api_key"],
            workers=procs,
            env=env,
            other_merchant_id=other["merchant_id"],
        )


def watcher_cursor(env: dict[str, str]) -> int | None:
    """The block the platform's chain watcher has read up to; None before its first poll."""
    settings = Settings.from_env(env)
    with psycopg2.connect(settings.database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT block_number FROM chain_watcher_cursor WHERE watcher_name = %s",
            (env["TRON_WATCHER_NAME"],),
        )
        row = cur.fetchone()
    return None if row is None else int(row[0])


def delete_namespace_topics(namespace: str) -> None:
    """Delete every topic of ``namespace`` (its own topics and its tables' changelogs)."""
    from aiokafka.admin import AIOKafkaAdminClient

    from app.settings import Settings

    async def delete() -> None:
        servers = Settings.from_env().kafka_bootstrap_servers
        admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        await admin.start()
        try:
            names = [
                name
                for name in await admin.list_topics()
                if name.startswith((f"{namespace}.", f"{namespace}-"))
            ]
            if names:
                await admin.delete_topics(names)
        finally:
            await admin.close()

    try:
        asyncio.run(delete())
    except Exception as exc:  # cleanup only: a test's verdict never depends on it
        print(f"could not delete the topics of {namespace}: {exc!r}", file=sys.stderr)
