"""Webhooks end to end: domain events in, signed POSTs out at a merchant's receiver.

Starts the platform as bench_pipeline.py does (tests/support/platform.py: a Tron simulator and two
real `checkout worker` processes in their own topic namespace, on the local Kafka, PostgreSQL and
Redis) with WEBHOOK_ALLOW_LOOPBACK=true and explicit WEBHOOK_* settings (printed), an aiohttp
receiver on loopback in this process (answers 200 at once, records each request's arrival), and
one webhook endpoint of the platform's merchant subscribed to "*", created over the HTTP API.
After a warm-up of 50 deliveries, in each of RUNS runs:

1. platform — N valid `InvoiceCreated` events (app/domain/events.py, a fresh aggregate id each,
   the merchant's id, occurred_at now) are produced as fast as aiokafka goes (acks=all, keyed by
   aggregate id, like the workers) straight to the namespace's domain-events topic. Measured from
   each event's produce call to its first arrival at the receiver; every stage on the way is
   timed too: the notification on the notifications topic (read here with aiokafka), the row in
   webhook_deliveries (created_at), the first attempt (webhook_attempts.started_at), its record
   (completed_at), and for comparison the projection agent's event-store row (recorded_at), the
   other consumer of the same events in the same workers. CPU per process group (from /proc)
   over the platform phase, and the workers' peak RSS (VmHWM). Every received body's signature
   is checked with examples/verify_webhook.py, the function merchants copy.
2. raw HTTP — the baseline for the last hop: the same N bodies, signed the same way, POSTed to the
   same receiver by a bare aiohttp client in a child process with the concurrency the platform
   has (WEBHOOK_CONCURRENCY × workers, capped by the endpoint limit), from one burst.
3. raw Kafka — the baseline DESIGN.md names: the same N event values produced to a fresh
   12-partition topic and consumed in this process (bench_pipeline.py's raw pass-through).

    .venv/bin/python bench/bench_webhooks.py [--events 2000] [--runs 1] [--endpoints 1]
        [--concurrency 64] [--endpoint-concurrency 64] [--poll-interval 0.5]
        [--receiver-delay 0] [--env NAME=VALUE]... [--profile] [--timeout 90]

--profile samples the workers' main-thread stacks during each platform phase (a sitecustomize
on the workers' PYTHONPATH) and prints where their time went; it costs the workers some speed.
The settlement agent ignores InvoiceCreated; the projection agent writes each one to the event
store and the invoice read model, as it would in production: that load is part of the figure.
Nothing is asserted on durations; the exit status is non-zero when the platform does not start,
or a delivery is missing or carries a bad signature after --timeout. Worker logs are in
.local/test-logs/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib.util
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg2
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from bench_pipeline import (  # noqa: E402
    BOOTSTRAP,
    CONSUMER_SETTINGS,
    PARTITIONS,
    REPLICATION,
    PlatformFailure,
    assigned,
    benchmark_platform,
    follow,
    latency_figures,
    leaders_elected,
)

from app.adapters.webhooks.signing import SIGNATURE_HEADER, signature_header, webhook_body  # noqa: E402
from app.domain.events import InvoiceCreated, InvoiceCreatedData  # noqa: E402
from app.domain.webhooks import first_delivery_id  # noqa: E402
from app.runtime.topics import DOMAIN_EVENTS, NOTIFICATIONS, topic_name  # noqa: E402
from app.settings import Settings  # noqa: E402
from tests.support.platform import Platform  # noqa: E402
from tests.support.processes import free_port  # noqa: E402
from tron_sim.encoding import to_base58  # noqa: E402

_EXAMPLE = REPO_ROOT / "examples" / "verify_webhook.py"
_spec = importlib.util.spec_from_file_location("verify_webhook_example", _EXAMPLE)
assert _spec is not None and _spec.loader is not None
_example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_example)
verify_webhook: Callable[[bytes, str, str], dict[str, Any]] = _example.verify_webhook

DATABASE_URL = os.environ.get("DATABASE_URL", Settings().database_url)
WORKERS = 2
WARMUP_EVENTS = 50
SETTLE_SECONDS = 10.0  # after the last first arrival: attempts recorded, late duplicates seen
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the merchant's receiver --------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    arrived: float
    attempt: str
    signature: str
    body: bytes


@dataclass
class Receiver:
    """Answers every POST with 200 at once; keeps each request by (path, event id)."""

    port: int = field(default_factory=free_port)
    requests: dict[tuple[str, str], list[Received]] = field(default_factory=dict)
    _awaited: set[tuple[str, str]] = field(default_factory=set)
    _all_in: asyncio.Event = field(default_factory=asyncio.Event)
    delay: float = 0.0  # seconds before answering: a merchant's server that does some work
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        arrived = time.time()
        key = (request.path, request.headers.get("Checkout-Event-Id", ""))
        self.requests.setdefault(key, []).append(
            Received(
                arrived,
                request.headers.get("Checkout-Attempt", ""),
                request.headers.get(SIGNATURE_HEADER, ""),
                body,
            )
        )
        self._awaited.discard(key)
        if not self._awaited:
            self._all_in.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def first_arrivals(self, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], float]:
        return {key: self.requests[key][0].arrived for key in wanted if key in self.requests}

    def expect(self, wanted: set[tuple[str, str]]) -> None:
        """Call before sending: ``wait`` then returns once every one of them arrived."""
        self._awaited = wanted - self.requests.keys()
        self._all_in.clear()
        if not self._awaited:
            self._all_in.set()

    async def wait(self, within: float) -> None:
        """Returns when everything ``expect``ed arrived, or after ``within`` s."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_in.wait(), within)


# --- the events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchEvent:
    event_id: str
    key: bytes
    value: bytes


def invoice_created_events(merchant_id: str, count: int, tag: str) -> list[BenchEvent]:
    """``count`` valid InvoiceCreated events, each of its own invoice, occurred now."""
    now = datetime.now(UTC)
    events = []
    for i in range(count):
        invoice_id = f"inv_bench_{tag}_{i}"
        address = to_base58(b"\x41" + hashlib.sha256(invoice_id.encode()).digest()[:20])
        event = InvoiceCreated.record(
            aggregate_id=invoice_id,
            aggregate_version=1,
            merchant_id=merchant_id,
            causation_id=f"bench:{invoice_id}",
            occurred_at=now,
            data=InvoiceCreatedData(
                amount=1_000_000 + i,
                deposit_address=address,
                required_confirmations=1,
                fee_percentage=Decimal("1"),
                expires_at=now + timedelta(hours=1),
                order_id=f"bench-{tag}-{i}",
            ),
        )
        value = event.model_dump_json().encode()
        events.append(BenchEvent(str(event.event_id), invoice_id.encode(), value))
    return events


async def produce_burst(
    producer: AIOKafkaProducer, topic: str, events: list[BenchEvent]
) -> dict[str, float]:
    """Sends every event as fast as the producer takes them; the wall clock of each send call."""
    produced: dict[str, float] = {}
    pending = []
    for event in events:
        produced[event.event_id] = time.time()
        pending.append(await producer.send(topic, event.value, key=event.key))
    await asyncio.gather(*pending)
    return produced


@dataclass
class Notifications:
    """First arrival of each (endpoint id, event id) on the namespace's notifications topic."""

    first: dict[tuple[str, str], float] = field(default_factory=dict)

    def record(self, value: bytes, arrived: float) -> None:
        notification = orjson.loads(value)
        key = (notification["endpoint_id"], notification["event"]["event_id"])
        self.first.setdefault(key, arrived)


async def at_end(topic: str, partitions: int) -> AIOKafkaConsumer:
    """A consumer on partitions 0…partitions-1 of ``topic``, positioned at their end.

    The partition count is the topic's spec (app/runtime/topics.py), not the consumer's metadata:
    bench_pipeline.assigned falls back to 12 partitions when the metadata is not there yet, and
    seeking on partitions a 6-partition topic does not have never returns.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, **CONSUMER_SETTINGS)
    await consumer.start()
    try:
        assignment = [TopicPartition(topic, n) for n in range(partitions)]
        consumer.assign(assignment)
        async with asyncio.timeout(30):
            await consumer.seek_to_end(*assignment)
            for partition in assignment:
                await consumer.position(partition)
    except BaseException:
        await consumer.stop()
        raise
    return consumer


# --- stages in PostgreSQL -----------------------------------------------------------------------


@dataclass
class Stages:
    """Per (endpoint id, event id): queued, first attempt started, and settled (wall clock).

    ``projected`` is another consumer of the same events in the same workers, for comparison:
    the projection agent's event-store row (recorded_at), keyed by ("", event id).
    """

    projected: dict[tuple[str, str], float]
    queued: dict[tuple[str, str], float]
    attempted: dict[tuple[str, str], float]
    recorded: dict[tuple[str, str], float]
    statuses: Counter[str]
    attempts_made: Counter[int]  # attempts per delivery → how many deliveries
    attempt_counter: Counter[int]  # the deliveries' attempt counters (claims) → how many


def read_stages(endpoint_ids: list[str], event_ids: list[str]) -> Stages:
    with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        cur.execute(
            """
            SELECT d.endpoint_id, d.event_id::text, d.status, d.attempts, d.created_at,
                d.completed_at, min(a.started_at), count(a.attempt)
            FROM webhook_deliveries d
            LEFT JOIN webhook_attempts a ON a.delivery_id = d.delivery_id
            WHERE d.endpoint_id = ANY(%s) AND d.event_id = ANY(%s::uuid[])
            GROUP BY d.delivery_id
            """,
            (endpoint_ids, event_ids),
        )
        rows = cur.fetchall()
        cur.execute(
            "SELECT event_id::text, recorded_at FROM event_store WHERE event_id = ANY(%s::uuid[])",
            (event_ids,),
        )
        projected = {("", event_id): at.timestamp() for event_id, at in cur.fetchall()}
    conn.close()
    stages = Stages(projected, {}, {}, {}, Counter(), Counter(), Counter())
    for endpoint_id, event_id, status, claims, created, completed, started, made in rows:
        key = (endpoint_id, event_id)
        stages.queued[key] = created.timestamp()
        if started is not None:
            stages.attempted[key] = started.timestamp()
        if completed is not None:
            stages.recorded[key] = completed.timestamp()
        stages.statuses[status] += 1
        stages.attempts_made[made] += 1
        stages.attempt_counter[claims] += 1
    return stages


def database_transactions() -> int:
    """Transactions committed or rolled back in the database so far, by every session.

    PostgreSQL's statistics lag by up to a second or so; every autocommit statement counts as one.
    """
    with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        )
        (count,) = cur.fetchone()
    conn.close()
    return int(count)


def pending_deliveries(endpoint_ids: list[str]) -> int:
    with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = ANY(%s)"
            " AND status = 'pending'",
            (endpoint_ids,),
        )
        (count,) = cur.fetchone()
    conn.close()
    return int(count)


# --- processes: CPU and memory ------------------------------------------------------------------


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds (user + system) of every live process by pid and role, and the machine's."""

    by_pid: dict[int, tuple[str, float]]
    machine_busy: float  # seconds all CPUs spent on anything but idle and iowait

    @classmethod
    def take(cls, worker_pids: set[int]) -> CpuSnapshot:
        by_pid = {}
        own = os.getpid()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            by_pid[pid] = (_role(pid, comm, worker_pids, own), _cpu_seconds(fields[11:13]))
        ticks = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        busy = _cpu_seconds(ticks) - _cpu_seconds(ticks[3:5])  # minus idle and iowait
        return cls(by_pid, busy)

    def cores_since(self, before: CpuSnapshot, seconds: float) -> dict[str, float]:
        """Cores used per role between the snapshots; a process that exited meanwhile is lost."""
        used: Counter[str] = Counter()
        for pid, (role, now) in self.by_pid.items():
            used[role] += now - before.by_pid.get(pid, (role, 0.0))[1]
        used["machine"] = self.machine_busy - before.machine_busy
        return {role: used[role] / seconds for role in CPU_ROLES}


CPU_ROLES = ("workers", "postgres", "kafka", "bench", "other", "machine")


def _role(pid: int, comm: str, worker_pids: set[int], own: int) -> str:
    if pid in worker_pids:
        return "workers"
    if pid == own:
        return "bench"
    if comm == "java":
        return "kafka"
    if comm.startswith("postgres"):
        return "postgres"
    return "other"


def _cpu_seconds(ticks: list[str]) -> float:
    return sum(int(tick) for tick in ticks) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set since it started, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- where the workers' time goes (--profile) --------------------------------------------------

# Loaded into the workers only (PYTHONPATH): a thread samples the main thread's stack every
# millisecond while the bench's switch file exists, weighting each sample by the time since the
# previous one, and writes the totals when the switch goes away. "idle" is time in the event
# loop's select: the worker was waiting on the network, not computing.
SAMPLER = """
import json, os, sys, threading, time
from collections import Counter


def _short(path):
    for cut in ("site-packages/", "/work/main/", "lib/python3"):
        if cut in path:
            return path.split(cut, 1)[1]
    return path


def _sample(directory):
    main = threading.main_thread().ident
    switch = os.path.join(directory, "on")
    inclusive, leaf = Counter(), Counter()
    active, checked, last = False, 0.0, time.perf_counter()
    while True:
        time.sleep(0.001)
        now = time.perf_counter()
        weight, last = now - last, now
        if now - checked > 0.05:
            checked = now
            on = os.path.exists(switch)
            if on and not active:
                inclusive.clear()
                leaf.clear()
            if active and not on:
                report = {"inclusive": inclusive.most_common(400), "leaf": leaf.most_common(40)}
                path = os.path.join(directory, "profile-%d.json" % os.getpid())
                with open(path + ".tmp", "w") as out:
                    json.dump(report, out)
                os.replace(path + ".tmp", path)
            active = on
        if not active:
            continue
        frame = sys._current_frames().get(main)
        names = []
        while frame is not None:
            names.append(_short(frame.f_code.co_filename) + ":" + frame.f_code.co_name)
            frame = frame.f_back
        if names:
            leaf[names[0]] += weight
            inclusive["(all)"] += weight
            for name in set(names):
                inclusive[name] += weight


if "worker" in sys.argv and os.environ.get("BENCH_PROFILE_DIR"):
    threading.Thread(
        target=_sample, args=(os.environ["BENCH_PROFILE_DIR"],), daemon=True, name="bench-sampler"
    ).start()
"""


def profiler_env(directory: Path) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(SAMPLER)
    path = os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "BENCH_PROFILE_DIR": str(directory)}


@contextlib.asynccontextmanager
async def profiling(directory: Path | None, pids: set[int]) -> AsyncIterator[None]:
    """Samples the workers while the block runs, then prints where their time went."""
    if directory is None:
        yield
        return
    _switch_sampling(directory, on=True)
    await asyncio.sleep(0.1)  # the samplers look every 50 ms
    try:
        yield
    finally:
        _switch_sampling(directory, on=False)
    for _ in range(40):
        profiles = _read_profiles(directory, pids)
        if profiles is not None:
            _print_profile(*profiles)
            return
        await asyncio.sleep(0.05)
    print("  profile: the workers wrote no profile", flush=True)


def _switch_sampling(directory: Path, *, on: bool) -> None:
    if on:
        for old in directory.glob("profile-*.json"):
            old.unlink()
        (directory / "on").touch()
    else:
        (directory / "on").unlink()


def _read_profiles(directory: Path, pids: set[int]) -> tuple[Counter[str], Counter[str]] | None:
    """Inclusive and self seconds per frame over every worker; None until all wrote theirs."""
    paths = [directory / f"profile-{pid}.json" for pid in pids]
    if not all(path.exists() for path in paths):
        return None
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    for path in paths:
        report = orjson.loads(path.read_bytes())
        inclusive.update(dict(report["inclusive"]))
        leaf.update(dict(report["leaf"]))
    return inclusive, leaf


def _print_profile(inclusive: Counter[str], leaf: Counter[str]) -> None:
    total = inclusive.pop("(all)", 0.0) or 1.0
    idle = sum(t for name, t in leaf.items() if name.endswith("selectors.py:select"))
    print(f"  profile of the workers' main threads: {total:.1f} s sampled, {idle / total:.0%} idle")
    # Frames on every stack (the CLI, run_forever) say nothing; the platform's own come first.
    shown = [(n, t) for n, t in inclusive.most_common() if t < 0.99 * total]
    ours = [(n, t) for n, t in shown if n.startswith(("app/", "agents/", "web/"))]
    print("    the platform's frames, inclusive (anywhere on the stack):")
    for name, seconds in ours[:25]:
        print(f"    {seconds / total:6.1%}  {name}")
    print("    every frame, inclusive:")
    for name, seconds in shown[:20]:
        print(f"    {seconds / total:6.1%}  {name}")
    # Biased towards calls that release the GIL (the sampler runs then): a psycopg2 send or a
    # socket write also collects the Python time that ran just before it.
    print("    self (the innermost Python frame):")
    for name, seconds in leaf.most_common(8):
        print(f"    {seconds / total:6.1%}  {name}")
    sys.stdout.flush()


# --- raw HTTP baseline (in a child process) ------------------------------------------------------


def raw_http_client(
    url: str, requests: list[tuple[bytes, dict[str, str]]], concurrency: int
) -> tuple[float, int]:
    """POSTs every body with at most ``concurrency`` in flight; (start wall clock, errors)."""
    return asyncio.run(_raw_http_client(url, requests, concurrency))


async def _raw_http_client(
    url: str, requests: list[tuple[bytes, dict[str, str]]], concurrency: int
) -> tuple[float, int]:
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=30)
    errors = 0
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        limit = asyncio.Semaphore(concurrency)

        async def post(body: bytes, headers: dict[str, str]) -> None:
            nonlocal errors
            try:
                async with (
                    limit,
                    session.post(url, data=body, headers=headers, allow_redirects=False) as answer,
                ):
                    await answer.read()
                    errors += answer.status != 200
            except (aiohttp.ClientError, TimeoutError):
                errors += 1

        started = time.time()
        await asyncio.gather(*(post(body, headers) for body, headers in requests))
    return started, errors


def signed_requests(
    events: list[BenchEvent], endpoint_id: str, secret: str
) -> list[tuple[bytes, dict[str, str]]]:
    """What the dispatcher would send for each event's first attempt (same body, same headers)."""
    requests = []
    for event in events:
        envelope = orjson.loads(event.value)
        body = webhook_body(
            event=envelope,
            delivery_id=first_delivery_id(endpoint_id, event.event_id),
            attempt=1,
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "crypto-checkout-webhooks/1",
            SIGNATURE_HEADER: signature_header([secret], int(time.time()), body),
            "Checkout-Event-Id": event.event_id,
            "Checkout-Event-Type": "InvoiceCreated",
            "Checkout-Delivery-Id": first_delivery_id(endpoint_id, event.event_id),
            "Checkout-Attempt": "1",
        }
        requests.append((body, headers))
    return requests


async def raw_http(
    receiver: Receiver,
    pool: ProcessPoolExecutor,
    events: list[BenchEvent],
    endpoint: Endpoint,
    concurrency: int,
    tag: str,
) -> dict[str, float]:
    path = f"/raw-http/{tag}"
    requests = signed_requests(events, endpoint.id, endpoint.secret)
    wanted = {(path, event.event_id) for event in events}
    receiver.expect(wanted)
    loop = asyncio.get_running_loop()
    started, errors = await loop.run_in_executor(
        pool, raw_http_client, receiver.url(path), requests, concurrency
    )
    await receiver.wait(5)
    arrived = receiver.first_arrivals(wanted)
    if errors or len(arrived) < len(events):
        raise PlatformFailure(f"raw HTTP: {errors} errors, {len(arrived)} of {len(events)} in")
    return {
        "raw HTTP deliveries/s": len(events) / (max(arrived.values()) - started),
        **latency_figures("raw HTTP burst → arrival", [t - started for t in arrived.values()]),
    }


# --- raw Kafka baseline -------------------------------------------------------------------------


async def raw_kafka(namespace: str, events: list[BenchEvent]) -> dict[str, float]:
    topic = f"{namespace}.bench.raw-webhooks.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, REPLICATION)])
        await leaders_elected(admin, topic)
        consumer = await assigned(topic, fresh=True)
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
        await producer.start()
        arrivals: dict[str, float] = {}
        complete = asyncio.Event()

        def arrived(value: bytes, at: float) -> None:
            arrivals.setdefault(orjson.loads(value)["event_id"], at)
            if len(arrivals) >= len(events):
                complete.set()

        try:
            await producer.partitions_for(topic)  # metadata and connections warm
            follower = asyncio.create_task(follow(consumer, arrived))
            produced = await produce_burst(producer, topic, events)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(complete.wait(), 60)
            follower.cancel()
        finally:
            await producer.stop()
            await consumer.stop()
    finally:
        with contextlib.suppress(Exception):
            await admin.delete_topics([topic])
        await admin.close()
    if len(arrivals) < len(events):
        raise PlatformFailure(f"raw Kafka: {len(arrivals)} of {len(events)} events consumed")
    first = min(produced.values())
    return {
        "raw Kafka events/s": len(events) / (max(arrivals.values()) - first),
        **latency_figures(
            "raw Kafka produce → consume", [arrivals[i] - produced[i] for i in arrivals]
        ),
    }


# --- the platform -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    id: str
    secret: str
    path: str


async def create_endpoints(
    session: aiohttp.ClientSession, platform: Platform, receiver: Receiver, count: int
) -> list[Endpoint]:
    endpoints = []
    for n in range(count):
        path = f"/hooks/{n}"
        async with session.post(
            f"{platform.url}/api/v1/webhook-endpoints",
            json={"url": receiver.url(path), "event_types": ["*"], "description": f"bench {n}"},
            headers=platform.headers(),
        ) as response:
            body = await response.json()
            if response.status != 201:
                raise PlatformFailure(f"creating a webhook endpoint: {response.status} {body}")
        endpoints.append(Endpoint(body["id"], body["secret"], path))
    return endpoints


@dataclass
class Bench:
    platform: Platform
    receiver: Receiver
    endpoints: list[Endpoint]
    producer: AIOKafkaProducer
    notifications: Notifications
    pool: ProcessPoolExecutor
    args: argparse.Namespace
    profile_dir: Path | None

    @property
    def domain_events(self) -> str:
        return topic_name(DOMAIN_EVENTS, self.platform.namespace)

    @property
    def worker_pids(self) -> set[int]:
        return {worker.process.pid for worker in self.platform.workers}

    def wanted(self, events: list[BenchEvent]) -> set[tuple[str, str]]:
        return {(e.path, event.event_id) for e in self.endpoints for event in events}

    async def deliver(self, events: list[BenchEvent], within: float) -> dict[str, float]:
        """Produces the events; returns produce times once all arrived (or ``within`` passed)."""
        self.receiver.expect(self.wanted(events))
        produced = await produce_burst(self.producer, self.domain_events, events)
        await self.receiver.wait(within)
        return produced


async def warm_up(bench: Bench) -> None:
    """A few deliveries first: connections opened and first claims made before measuring."""
    events = invoice_created_events(bench.platform.merchant_id, WARMUP_EVENTS, "warmup")
    await bench.deliver(events, bench.args.timeout)
    missing = bench.wanted(events) - bench.receiver.requests.keys()
    if missing:
        raise PlatformFailure(f"warm-up: {len(missing)} of {len(events)} deliveries never came")


def rate(count: int, start: float, ends: list[float]) -> float:
    return count / (max(ends) - start) if ends else 0.0


def stage_figures(
    by_key: dict[tuple[str, str], float], produced: dict[str, float], name: str, first: float
) -> dict[str, float]:
    latencies = [at - produced[event_id] for (_, event_id), at in by_key.items()]
    figures = latency_figures(f"produce → {name}", latencies)
    del figures[f"produce → {name} p99"]
    return {f"{name}/s": rate(len(by_key), first, list(by_key.values())), **figures}


def hop_figures(
    name: str, start: dict[tuple[str, str], float], end: dict[tuple[str, str], float]
) -> dict[str, float]:
    """Per delivery, from one stage to the next: median and worst, in ms."""
    hops = [end[key] - start[key] for key in end.keys() & start.keys()]
    if not hops:
        return {f"{name} p50": math.nan, f"{name} max": math.nan}
    return {f"{name} p50": statistics.median(hops) * 1000, f"{name} max": max(hops) * 1000}


async def one_run(bench: Bench, run: int) -> tuple[dict[str, float], list[str]]:
    args = bench.args
    tag = f"r{run}{uuid.uuid4().hex[:6]}"
    events = invoice_created_events(bench.platform.merchant_id, args.events, tag)
    wanted = bench.wanted(events)
    problems: list[str] = []
    load = os.getloadavg()[0]

    transactions_before = await asyncio.to_thread(database_transactions)
    async with profiling(bench.profile_dir, bench.worker_pids):
        cpu_before, clock_before = CpuSnapshot.take(bench.worker_pids), time.time()
        produced = await bench.deliver(events, args.timeout)
        cpu_after, clock_after = CpuSnapshot.take(bench.worker_pids), time.time()
    first_produced, last_produced = min(produced.values()), max(produced.values())

    arrived = bench.receiver.first_arrivals(wanted)
    missing = len(wanted) - len(arrived)
    if missing:
        problems.append(f"{missing} of {len(wanted)} deliveries missing after {args.timeout:g} s")
    # Attempts are recorded after the receiver answered; duplicates would come after that.
    endpoint_ids = [e.id for e in bench.endpoints]
    for _ in range(round(SETTLE_SECONDS / 0.2)):
        if not await asyncio.to_thread(pending_deliveries, endpoint_ids):
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    transactions = await asyncio.to_thread(database_transactions) - transactions_before
    stages = await asyncio.to_thread(read_stages, endpoint_ids, [e.event_id for e in events])

    by_path = {e.path: e for e in bench.endpoints}
    duplicates = sum(len(bench.receiver.requests.get(key, ())) - 1 for key in arrived)
    retried = 0
    bad_signatures = 0
    for key in arrived:
        for received in bench.receiver.requests[key]:
            retried += received.attempt != "1"
            try:
                body = verify_webhook(received.body, received.signature, by_path[key[0]].secret)
                if body["id"] != key[1] or body["merchant_id"] != bench.platform.merchant_id:
                    raise ValueError("body of another event")
            except (ValueError, KeyError):
                bad_signatures += 1
    if bad_signatures:
        problems.append(f"{bad_signatures} deliveries with a bad signature or body")

    by_endpoint = {e.path: e.id for e in bench.endpoints}
    arrived_by_id = {(by_endpoint[path], event_id): at for (path, event_id), at in arrived.items()}
    notified = {k: v for k, v in bench.notifications.first.items() if k[1] in produced}
    window = clock_after - clock_before
    cpu = cpu_after.cores_since(cpu_before, window)
    figures = {
        "deliveries/s": rate(len(arrived), first_produced, list(arrived.values())),
        **latency_figures(
            "produce → first delivery",
            [at - produced[event_id] for (_, event_id), at in arrived.items()],
        ),
        "missing deliveries": float(missing),
        "duplicate deliveries": float(duplicates),
        "requests with attempt > 1": float(retried),
        "bad signatures": float(bad_signatures),
        "events produced/s": len(events) / max(last_produced - first_produced, 1e-6),
        **stage_figures(stages.projected, produced, "projected", first_produced),
        **stage_figures(notified, produced, "notified", first_produced),
        **stage_figures(stages.queued, produced, "queued", first_produced),
        **stage_figures(stages.attempted, produced, "attempt started", first_produced),
        **stage_figures(arrived_by_id, produced, "arrived", first_produced),
        **stage_figures(stages.recorded, produced, "recorded", first_produced),
        **hop_figures("hop notified → queued", notified, stages.queued),
        **hop_figures("hop queued → attempt started", stages.queued, stages.attempted),
        **hop_figures("hop attempt started → arrived", stages.attempted, arrived_by_id),
        **hop_figures("hop arrived → recorded", arrived_by_id, stages.recorded),
        **{f"CPU {role} (cores)": cores for role, cores in cpu.items()},
        "worker CPU ms per delivery": cpu["workers"] * window / len(wanted) * 1000,
        "postgres CPU ms per delivery": cpu["postgres"] * window / len(wanted) * 1000,
        "postgres transactions per delivery": transactions / len(wanted),
        "worker peak RSS MiB": max(peak_rss_mb(pid) for pid in bench.worker_pids),
    }
    print(
        f"  platform: {len(events)} events × {len(bench.endpoints)} endpoint(s) produced in "
        f"{last_produced - first_produced:.2f} s; {len(arrived)} delivered, last "
        f"{max(arrived.values(), default=first_produced) - first_produced:.2f} s after the first "
        f"produce; load average before {load:.2f}",
        flush=True,
    )
    print(
        f"  deliveries: statuses {dict(stages.statuses)}, attempts made per delivery "
        f"{dict(sorted(stages.attempts_made.items()))}, attempt counters "
        f"{dict(sorted(stages.attempt_counter.items()))}; signatures checked: "
        f"{len(arrived) + duplicates - bad_signatures} valid, {bad_signatures} bad",
        flush=True,
    )

    concurrency = WORKERS * min(args.concurrency, args.endpoint_concurrency * len(bench.endpoints))
    raw = await raw_http(bench.receiver, bench.pool, events, bench.endpoints[0], concurrency, tag)
    figures.update(raw)
    figures.update(await raw_kafka(bench.platform.namespace, events))
    print(
        f"  raw HTTP ({concurrency} in flight): {raw['raw HTTP deliveries/s']:.0f}/s; raw Kafka: "
        f"{figures['raw Kafka events/s']:.0f} events/s",
        flush=True,
    )
    return figures, problems


async def bench(
    platform: Platform, args: argparse.Namespace, profile_dir: Path | None
) -> list[dict[str, float]]:
    receiver = Receiver(delay=args.receiver_delay)
    await receiver.start()
    notifications = Notifications()
    consumer = await at_end(topic_name(NOTIFICATIONS, platform.namespace), NOTIFICATIONS.partitions)
    follower = asyncio.create_task(follow(consumer, notifications.record))
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    context = multiprocessing.get_context("spawn")  # the child must not inherit a running loop
    problems: list[str] = []
    runs = []
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                endpoints = await create_endpoints(session, platform, receiver, args.endpoints)
            await producer.partitions_for(topic_name(DOMAIN_EVENTS, platform.namespace))
            state = Bench(
                platform, receiver, endpoints, producer, notifications, pool, args, profile_dir
            )
            await warm_up(state)
            for run in range(1, args.runs + 1):
                print(f"run {run}/{args.runs}", flush=True)
                figures, found = await one_run(state, run)
                runs.append(figures)
                problems += [f"run {run}: {problem}" for problem in found]
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await consumer.stop()
        await producer.stop()
        await receiver.stop()
    if problems:
        report(runs, args)
        raise PlatformFailure("; ".join(problems))
    return runs


# --- report -------------------------------------------------------------------------------------

TARGETS = {
    "deliveries/s": "≥ 1000/s",
    "produce → first delivery p95": "< 10000 ms",
    "produce → first delivery p99": "< 10000 ms",
}


def versus(name: str, value: float, medians: dict[str, float]) -> str:
    """Throughput as a fraction of each baseline; latency as a multiple of it."""
    if name == "deliveries/s":
        return (
            f"{value / medians['raw HTTP deliveries/s']:.3f} of raw HTTP, "
            f"{value / medians['raw Kafka events/s']:.3f} of raw Kafka"
        )
    if name.startswith("produce → first delivery "):
        q = name.rsplit(" ", 1)[1]
        return (
            f"{value / medians['raw HTTP burst → arrival ' + q]:.1f}× raw HTTP, "
            f"{value / medians['raw Kafka produce → consume ' + q]:.1f}× raw Kafka"
        )
    return ""


def report(runs: list[dict[str, float]], args: argparse.Namespace) -> None:
    if not runs:
        return
    medians = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
    print(
        f"\n{args.events} InvoiceCreated events per run to {args.endpoints} endpoint(s); "
        f"median of {len(runs)} run(s); latencies in ms, rates per second, CPU in cores"
    )
    runs_header = "".join(f"{'run ' + str(i + 1):>9s}" for i in range(len(runs)))
    header = f"{'figure':38s}{runs_header}{'median':>10s}  {'target':12s}vs baselines"
    print(header)
    print("-" * len(header))
    for name, value in medians.items():
        digits = 2 if "(cores)" in name else 1
        cells = "".join(f"{run[name]:9.{digits}f}" for run in runs)
        print(
            f"{name:38s}{cells}{value:10.{digits}f}  {TARGETS.get(name, ''):12s}"
            f"{versus(name, value, medians)}"
        )


def main(args: argparse.Namespace) -> None:
    settings = {
        "WEBHOOK_ALLOW_LOOPBACK": "true",
        "WEBHOOK_CONCURRENCY": str(args.concurrency),
        "WEBHOOK_ENDPOINT_CONCURRENCY": str(args.endpoint_concurrency),
        "WEBHOOK_POLL_INTERVAL": f"{args.poll_interval:g}",
        **dict(item.split("=", 1) for item in args.env),
    }
    defaults = Settings()
    shown = {
        "WEBHOOK_TIMEOUT": os.environ.get("WEBHOOK_TIMEOUT", f"{defaults.webhook_timeout:g}"),
        "DATABASE_POOL_MAX": os.environ.get("DATABASE_POOL_MAX", str(defaults.database_pool_max)),
        **settings,
    }
    details = f"settings: {' '.join(f'{k}={v}' for k, v in shown.items())}; {os.cpu_count()} CPUs"
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        profile_dir = Path(tmp) / "profile" if args.profile else None
        extra = profiler_env(profile_dir) if profile_dir else {}
        with benchmark_platform(Path(tmp), WORKERS, details, **settings, **extra) as platform:
            runs = asyncio.run(bench(platform, args, profile_dir))
    report(runs, args)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="domain events per run (N)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--endpoints", type=int, default=1, help="endpoints, each gets every event")
    parser.add_argument("--concurrency", type=int, default=64, help="WEBHOOK_CONCURRENCY")
    parser.add_argument(
        "--endpoint-concurrency", type=int, default=64, help="WEBHOOK_ENDPOINT_CONCURRENCY"
    )
    parser.add_argument("--poll-interval", type=float, default=0.5, help="WEBHOOK_POLL_INTERVAL")
    parser.add_argument(
        "--timeout", type=float, default=90, help="seconds to wait for every delivery of a run"
    )
    parser.add_argument(
        "--receiver-delay",
        type=float,
        default=0.0,
        help="seconds the receiver takes to answer (arrival is recorded before)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the workers' stacks during each run and print where their time went",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another setting for the workers (repeatable), e.g. DATABASE_POOL_MAX=40",
    )
    args = parser.parse_args()
    if any("=" not in item for item in args.env):
        parser.error("--env takes NAME=VALUE")
    if min(args.events, args.runs, args.endpoints, args.concurrency) < 1:
        parser.error("--events, --runs, --endpoints and --concurrency must be positive")
    return args


if __name__ == "__main__":
    main(parse_args())
