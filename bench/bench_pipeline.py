"""End-to-end payment pipeline: invoices created over HTTP, paid on the simulator, settled.

Starts the whole platform as the integration tests do (tests/support/platform.py: a manual-mode
Tron simulator and two real `checkout worker` processes in their own topic namespace, on the local
Kafka, PostgreSQL and Redis), then, in each of RUNS runs:

1. burst — creates N invoices over HTTP (bounded concurrency, both workers), opens one WebSocket
   per invoice, pays them all with one `/sim/transfers` batch mined into one block (amounts below
   100 USDT need one confirmation, so that block also confirms them), and measures from the block's
   timestamp to each WebSocket `paid` message and to each `SettlementCreated` (and, for detection,
   `PaymentDetected`) on the namespace's domain-events topic, read with aiokafka;
2. fixed rate — POST /api/v1/invoices at RATE req/s, then GET /api/v1/public/invoice/{id} at
   GET_RATE (default RATE), each for DURATION seconds (open loop, one client session), and
   reports their latency;
3. raw pass-through — the baseline: N events of the same size produced in one burst to a fresh
   12-partition topic with aiokafka (acks=all, like the workers) and consumed in this process,
   measured from the start of the burst to each arrival, exactly like the pipeline's burst.

Prints the median of the runs with DESIGN.md's targets and the ratio against the raw pass-through:

    .venv/bin/python bench/bench_pipeline.py [--invoices 100] [--runs 3] [--rate 100]
        [--get-rate RATE] [--duration 5]

Block timestamps are the simulator's wall clock in ms and arrivals are this process's wall clock:
same machine, so no skew. Nothing is asserted; the exit status is non-zero only when the platform
fails (it does not start, an invoice is never paid or settled within --timeout, a request errs in
the burst). Worker logs are in .local/test-logs/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.platform import Platform, running_platform  # noqa: E402

BOOTSTRAP = ",".join(
    url.split("://", 1)[-1]
    for url in os.environ.get("KAFKA_BROKER", "kafka://127.0.0.1:9092").split(",")
)
REPLICATION = int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1"))
DOMAIN_EVENTS = "crypto-checkout.domain-events"
PARTITIONS = 12  # the domain-events topic's partition count (app/runtime/topics.py)
CREATE_CONCURRENCY = 16
MAX_IN_FLIGHT = 2_000  # fixed-rate phase: beyond this many unanswered requests, skip (counted)
REQUEST_TIMEOUT = 30.0
# Both consumers (domain events and raw) fetch the same way: answer as soon as one byte is there.
CONSUMER_SETTINGS: dict[str, Any] = {
    "enable_auto_commit": False,
    "fetch_min_bytes": 1,
    "fetch_max_wait_ms": 100,
}


class PlatformFailure(Exception):
    """The platform did not do what the benchmark waits for; reported with the worker logs."""


# --- figures -------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latency_figures(prefix: str, seconds: list[float]) -> dict[str, float]:
    return {f"{prefix} p{q}": percentile(seconds, q) * 1000 for q in (50, 95, 99)}


# --- domain events -------------------------------------------------------------------------------


@dataclass
class EventArrivals:
    """First arrival (wall clock) of each event type per invoice on the domain-events topic."""

    by_type: dict[str, dict[str, float]] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, value: bytes, arrived: float) -> None:
        event = json.loads(value)
        data = event.get("data") or {}
        invoice_id = data.get("invoice_id") or event.get("aggregate_id")
        seen = self.by_type.setdefault(str(event.get("event_type")), {})
        seen.setdefault(str(invoice_id), arrived)
        self.changed.set()

    async def quiet(self, gap: float = 1.0, limit: float = 30.0) -> None:
        """Returns once no event arrived for ``gap`` s (or after ``limit`` s)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), gap)
            except TimeoutError:
                return

    def of(self, event_type: str) -> dict[str, float]:
        return self.by_type.get(event_type, {})


async def assigned(topic: str, *, fresh: bool = False) -> AIOKafkaConsumer:
    """A consumer on every partition of ``topic``, positioned at its end before we return.

    A ``fresh`` (just created, empty) topic is read from offset 0 without asking the broker.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, **CONSUMER_SETTINGS)
    await consumer.start()
    try:
        await consumer.topics()  # fetches metadata
        numbers = consumer.partitions_for_topic(topic) or set(range(PARTITIONS))
        partitions = [TopicPartition(topic, n) for n in sorted(numbers)]
        consumer.assign(partitions)
        if fresh:
            for partition in partitions:
                consumer.seek(partition, 0)
        else:
            await consumer.seek_to_end(*partitions)
            for partition in partitions:
                await consumer.position(partition)
    except BaseException:
        await consumer.stop()
        raise
    return consumer


async def follow(consumer: AIOKafkaConsumer, on_value: Callable[[bytes, float], None]) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=200)
        arrived = time.time()
        for records in batches.values():
            for record in records:
                on_value(record.value, arrived)


# --- burst: create, watch, pay, wait -----------------------------------------------------------


@dataclass
class Invoice:
    id: str
    address: str
    amount: str
    worker: str


async def create_invoices(
    session: aiohttp.ClientSession, platform: Platform, count: int
) -> list[Invoice]:
    limit = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def one(i: int) -> Invoice:
        amount = f"{1 + i % 90}.{1 + i % 99:02d}"  # below 100 USDT: one confirmation
        worker = platform.worker_urls[i % len(platform.worker_urls)]
        async with (
            limit,
            session.post(
                f"{worker}/api/v1/invoices",
                json={"amount": amount, "order_id": f"bench-{uuid.uuid4().hex[:12]}"},
                headers=platform.headers(),
            ) as response,
        ):
            body = await response.text()
            if response.status != 201:
                raise PlatformFailure(f"creating an invoice: {response.status} {body}")
        invoice = json.loads(body)
        return Invoice(invoice["id"], invoice["deposit_address"], invoice["amount_due"], worker)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def open_websockets(
    session: aiohttp.ClientSession, platform: Platform, invoices: list[Invoice]
) -> list[aiohttp.ClientWebSocketResponse]:
    """One WebSocket per invoice, on the worker that did not create it; first view read."""
    limit = asyncio.Semaphore(CREATE_CONCURRENCY)
    urls = platform.worker_urls

    async def one(i: int, invoice: Invoice) -> aiohttp.ClientWebSocketResponse:
        worker = urls[(i + 1) % len(urls)]
        async with limit:
            ws = await session.ws_connect(f"{worker}/api/v1/public/invoice/{invoice.id}/ws")
            first = json.loads(await ws.receive_str(timeout=REQUEST_TIMEOUT))
        if first.get("status") != "pending":
            raise PlatformFailure(f"{invoice.id}: first WebSocket view is {first}")
        return ws

    return list(await asyncio.gather(*(one(i, inv) for i, inv in enumerate(invoices))))


async def wait_paid(ws: aiohttp.ClientWebSocketResponse, invoice_id: str) -> float:
    """Wall-clock arrival of the first view with status `paid`."""
    async for message in ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            break
        if json.loads(message.data).get("status") == "paid":
            return time.time()
    raise PlatformFailure(f"{invoice_id}: WebSocket closed before `paid` ({ws.close_code})")


async def pay_in_one_block(
    session: aiohttp.ClientSession, platform: Platform, invoices: list[Invoice]
) -> tuple[int, float]:
    """Pays every invoice in one mined block; returns (block number, block timestamp in s)."""
    transfers = [{"to": inv.address, "amount": inv.amount} for inv in invoices]
    async with session.post(
        f"{platform.sim.url}/sim/transfers",
        json={"transfers": transfers, "mine": True, "per_block": len(transfers)},
    ) as response:
        if response.status != 200:
            raise PlatformFailure(f"/sim/transfers: {response.status} {await response.text()}")
        blocks = (await response.json())["blocks"]
    if len(blocks) != 1 or blocks[0]["transactions"] != len(invoices):
        raise PlatformFailure(f"expected one block of {len(invoices)} transfers, got {blocks}")
    number = int(blocks[0]["number"])
    async with session.post(
        f"{platform.sim.url}/wallet/getblockbynum", json={"num": number, "visible": True}
    ) as response:
        block = await response.json()
    return number, block["block_header"]["raw_data"]["timestamp"] / 1000


async def wait_events(
    arrivals: EventArrivals, event_type: str, ids: set[str], within: float
) -> dict[str, float]:
    deadline = time.monotonic() + within
    while True:
        seen = arrivals.of(event_type)
        missing = ids - seen.keys()
        if not missing:
            return {i: seen[i] for i in ids}
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PlatformFailure(
                f"{len(missing)} of {len(ids)} invoices had no {event_type} within {within:.0f} s"
                f" (e.g. {sorted(missing)[:3]})"
            )
        arrivals.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrivals.changed.wait(), min(remaining, 0.5))


async def burst(
    session: aiohttp.ClientSession,
    platform: Platform,
    arrivals: EventArrivals,
    args: argparse.Namespace,
) -> tuple[dict[str, float], list[Invoice]]:
    started = time.perf_counter()
    invoices = await create_invoices(session, platform, args.invoices)
    created = time.perf_counter() - started
    sockets = await open_websockets(session, platform, invoices)
    readers: list[asyncio.Task[float]] = []
    try:
        readers = [
            asyncio.create_task(wait_paid(ws, inv.id))
            for ws, inv in zip(sockets, invoices, strict=True)
        ]
        number, block_time = await pay_in_one_block(session, platform, invoices)
        ids = {inv.id for inv in invoices}
        try:
            async with asyncio.timeout(args.timeout):
                paid = await asyncio.gather(*readers)
        except TimeoutError:
            late = sum(not r.done() for r in readers)
            raise PlatformFailure(
                f"{late} of {len(ids)} WebSockets saw no `paid` within {args.timeout:.0f} s"
            ) from None
        settled = await wait_events(arrivals, "SettlementCreated", ids, args.timeout)
        detected = await wait_events(arrivals, "PaymentDetected", ids, args.timeout)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    last_settled = max(settled.values())
    figures = {
        "invoices settled/s": len(ids) / (last_settled - block_time),
        **latency_figures("block → PaymentDetected", [t - block_time for t in detected.values()]),
        **latency_figures("block → WebSocket paid", [t - block_time for t in paid]),
        **latency_figures("block → SettlementCreated", [t - block_time for t in settled.values()]),
    }
    print(
        f"  burst: {len(ids)} invoices created in {created:.1f} s, paid in block {number}, "
        f"last settlement {last_settled - block_time:.2f} s after the block",
        flush=True,
    )
    return figures, invoices


# --- fixed rate ----------------------------------------------------------------------------------


@dataclass
class RateResult:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    offered: float = 0.0  # req/s actually started
    answered: float = 0.0  # req/s answered, first start to last answer
    last_answer: float = 0.0  # perf_counter


async def at_fixed_rate(
    request: Callable[[int], Awaitable[int]], rate: float, duration: float
) -> RateResult:
    """Starts ``request(i)`` every 1/rate s for ``duration`` s (open loop); waits for them all."""
    result = RateResult()
    total = max(1, round(rate * duration))
    in_flight: set[asyncio.Task[None]] = set()

    async def timed(i: int) -> None:
        started = time.perf_counter()
        try:
            status = await request(i)
        except (aiohttp.ClientError, TimeoutError) as exc:
            result.errors[type(exc).__name__] = result.errors.get(type(exc).__name__, 0) + 1
            return
        result.last_answer = time.perf_counter()
        if 200 <= status < 300:
            result.latencies.append(time.perf_counter() - started)
        else:
            result.errors[str(status)] = result.errors.get(str(status), 0) + 1

    begin = result.last_answer = time.perf_counter()
    for i in range(total):
        await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
        if len(in_flight) >= MAX_IN_FLIGHT:
            result.skipped += 1
            continue
        task = asyncio.create_task(timed(i))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    result.offered = (total - result.skipped) / max(time.perf_counter() - begin, 1e-9)
    if in_flight:
        await asyncio.wait(in_flight, timeout=REQUEST_TIMEOUT * 2)
    result.answered = len(result.latencies) / max(result.last_answer - begin, 1e-9)
    return result


async def fixed_rate(
    session: aiohttp.ClientSession,
    platform: Platform,
    invoices: list[Invoice],
    args: argparse.Namespace,
) -> dict[str, float]:
    urls = platform.worker_urls

    async def create(i: int) -> int:
        async with session.post(
            f"{urls[i % len(urls)]}/api/v1/invoices",
            json={"amount": "9.99"},
            headers=platform.headers(),
        ) as response:
            await response.read()
            return response.status

    async def public_get(i: int) -> int:
        invoice = invoices[i % len(invoices)]
        async with session.get(
            f"{urls[i % len(urls)]}/api/v1/public/invoice/{invoice.id}"
        ) as response:
            await response.read()
            return response.status

    figures: dict[str, float] = {}
    phases = (("HTTP create", create, args.rate), ("HTTP public GET", public_get, args.get_rate))
    for label, request, rate in phases:
        result = await at_fixed_rate(request, rate, args.duration)
        figures.update(latency_figures(f"{label} @{rate:g}/s", result.latencies))
        problems = ", ".join(f"{n}× {what}" for what, n in sorted(result.errors.items()))
        if result.skipped:
            problems += f"{', ' if problems else ''}{result.skipped} skipped (too many in flight)"
        print(
            f"  {label}: {len(result.latencies)} ok, {result.offered:.0f} req/s offered, "
            f"{result.answered:.0f} req/s answered"
            f"{'; ' + problems if problems else ''}",
            flush=True,
        )
    return figures


# --- raw aiokafka pass-through -------------------------------------------------------------------


def sample_event(i: int) -> tuple[bytes, bytes]:
    """A key and value shaped like a SettlementCreated event (same size order)."""
    invoice_id = f"inv_{uuid.uuid4().hex[:24]}"
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "SettlementCreated",
        "event_version": 1,
        "aggregate_id": invoice_id,
        "aggregate_type": "settlement",
        "occurred_at": "2025-01-01T00:00:00.000000Z",
        "data": {
            "invoice_id": invoice_id,
            "gross_amount": f"{1 + i % 90}.5",
            "platform_fee_amount": "0.02",
            "platform_fee_percentage": "1",
            "net_amount": f"{i % 90}.48",
        },
    }
    return invoice_id.encode(), json.dumps(event).encode()


async def raw_pass_through(namespace: str, count: int) -> dict[str, float]:
    topic = f"{namespace}.bench.raw-pass-through.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, REPLICATION)])
        await leaders_elected(admin, topic)
        return await produce_and_consume(topic, count)
    finally:
        with contextlib.suppress(Exception):
            await admin.delete_topics([topic])
        await admin.close()


async def leaders_elected(admin: AIOKafkaAdminClient, topic: str) -> None:
    """Waits until every partition of the fresh topic has a leader (else clients log errors)."""
    for _ in range(100):
        with contextlib.suppress(Exception):
            [described] = await admin.describe_topics([topic])
            partitions = described["partitions"]
            if len(partitions) == PARTITIONS and all(p["leader"] >= 0 for p in partitions):
                return
        await asyncio.sleep(0.1)
    raise PlatformFailure(f"the fresh topic {topic} has no leader for every partition")


async def produce_and_consume(topic: str, count: int) -> dict[str, float]:
    messages = [sample_event(i) for i in range(count)]
    consumer = await assigned(topic, fresh=True)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    arrivals: list[float] = []
    complete = asyncio.Event()

    def arrived(_value: bytes, at: float) -> None:
        arrivals.append(at)
        if len(arrivals) >= count:
            complete.set()

    try:
        # Warm the producer's connections and metadata so the burst measures the pass-through.
        await producer.partitions_for(topic)
        follower = asyncio.create_task(follow(consumer, arrived))
        started = time.time()
        sent = [await producer.send(topic, value, key=key) for key, value in messages]
        await asyncio.gather(*sent)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(complete.wait(), 60)
        follower.cancel()
    finally:
        await producer.stop()
        await consumer.stop()
    if len(arrivals) < count:
        raise PlatformFailure(f"raw pass-through: {len(arrivals)} of {count} events consumed")
    return {
        "raw events/s": count / (max(arrivals) - started),
        **latency_figures("raw produce → consume", [t - started for t in arrivals]),
    }


# --- runs and report ------------------------------------------------------------------------------

TARGETS = {
    "block → PaymentDetected p95": "< 1000 ms",
    "block → WebSocket paid p95": "< 1000 ms",
    "block → SettlementCreated p95": "< 1000 ms",
    "HTTP create": "p95 < 200 ms",
    "HTTP public GET": "p95 < 200 ms",
}


async def one_run(
    platform: Platform, arrivals: EventArrivals, args: argparse.Namespace
) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=0)  # the burst's WebSockets hold one connection each
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        figures, invoices = await burst(session, platform, arrivals, args)
        await arrivals.quiet()  # the burst's later events (SettlementCompleted, …) first
        figures.update(await fixed_rate(session, platform, invoices, args))
    figures.update(await raw_pass_through(platform.namespace, args.invoices))
    print(
        f"  raw pass-through: {args.invoices} events at {figures['raw events/s']:.0f} events/s, "
        f"p50 {figures['raw produce → consume p50']:.0f} ms",
        flush=True,
    )
    return figures


async def bench(platform: Platform, args: argparse.Namespace) -> list[dict[str, float]]:
    arrivals = EventArrivals()
    consumer = await assigned(f"{platform.namespace}.{DOMAIN_EVENTS}")
    follower = asyncio.create_task(follow(consumer, arrivals.record))
    runs = []
    try:
        for run in range(1, args.runs + 1):
            print(f"run {run}/{args.runs}", flush=True)
            runs.append(await one_run(platform, arrivals, args))
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await consumer.stop()
    return runs


def vs_raw(name: str, value: float, raw: dict[str, float]) -> str:
    """Throughput as a fraction of raw; a burst latency as a multiple of the raw one."""
    if name == "invoices settled/s":
        return f"{value / raw['raw events/s']:.3f} of raw"
    if name.startswith("block → "):
        return f"{value / raw['raw produce → consume ' + name.rsplit(' ', 1)[1]]:.1f}× raw"
    return ""


def target_of(name: str) -> str:
    for prefix, target in TARGETS.items():
        if name.startswith(prefix):
            return target if "p95" in name else ""
    return ""


def report(runs: list[dict[str, float]], args: argparse.Namespace) -> None:
    medians = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
    raw = {name: value for name, value in medians.items() if name.startswith("raw ")}
    print(
        f"\n{args.invoices} invoices per burst, fixed rate {args.rate:g} req/s (creates) and "
        f"{args.get_rate:g} req/s (public GETs) for {args.duration:g} s; "
        f"median of {len(runs)} run(s); latencies in ms"
    )
    runs_header = "".join(f"{'run ' + str(i + 1):>9s}" for i in range(len(runs)))
    header = f"{'figure':40s}{runs_header}{'median':>10s}  {'target':14s}vs raw"
    print(header)
    print("-" * len(header))
    for name, value in medians.items():
        cells = "".join(f"{run[name]:9.1f}" for run in runs)
        print(f"{name:40s}{cells}{value:10.1f}  {target_of(name):14s}{vs_raw(name, value, raw)}")


def tail_logs(platform: Platform) -> str:
    return "\n".join(f"--- {w.name} ({w.log_path}) ---\n{w.log_tail(25)}" for w in platform.workers)


@contextlib.contextmanager
def benchmark_platform(
    data_dir: Path, workers: int = 2, details: str = "", **overrides: str
) -> Iterator[Platform]:
    """The platform as the integration tests start it, announced; a PlatformFailure raised
    inside ends the benchmark with the reason and the tail of every worker's log."""
    with contextlib.ExitStack() as stack:
        started = time.perf_counter()
        try:
            platform = stack.enter_context(running_platform(data_dir, workers, **overrides))
        except AssertionError as exc:
            raise SystemExit(f"the platform did not start: {exc}") from None
        print(
            f"platform up in {time.perf_counter() - started:.1f} s: namespace "
            f"{platform.namespace}, workers {' '.join(platform.worker_urls)}"
            + (f"\n{details}" if details else ""),
            flush=True,
        )
        try:
            yield platform
        except PlatformFailure as exc:
            raise SystemExit(f"the platform failed: {exc}\n{tail_logs(platform)}") from None


def main(args: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp,
        benchmark_platform(Path(tmp)) as platform,
    ):
        runs = asyncio.run(bench(platform, args))
    report(runs, args)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--invoices", type=int, default=100, help="invoices per burst (N)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=100, help="req/s in the fixed-rate phase")
    parser.add_argument(
        "--get-rate", type=float, help="req/s of the public GET phase (default: --rate)"
    )
    parser.add_argument("--duration", type=float, default=5, help="seconds per fixed-rate phase")
    parser.add_argument(
        "--timeout", type=float, default=120, help="seconds to wait for every paid/settlement"
    )
    args = parser.parse_args()
    if args.get_rate is None:
        args.get_rate = args.rate
    if min(args.invoices, args.runs, args.rate, args.get_rate, args.duration) <= 0:
        parser.error("--invoices, --runs, --rate, --get-rate and --duration must be positive")
    return args


if __name__ == "__main__":
    main(parse_args())
