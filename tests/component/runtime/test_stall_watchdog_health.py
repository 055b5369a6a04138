"""The stall watchdog survives its broker's outage, and says when it cannot see (issue 18).

A watchdog whose offsets client broke while the broker was away kept failing every 5 s for the
rest of the worker's life. Here its client fails in the ways a broker outage makes it fail; the
watchdog must drop it, connect afresh, seek a stalled partition back once it sees again, and
report the outage: a counter, the last completed check, one warning per outage, and
``stall_watchdog`` in the operators' detailed /readyz (never in the public one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.structs import TopicPartition
from prometheus_client import REGISTRY

from app.runtime import stall
from app.runtime.stall import BLIND_SECONDS, StallTracker, StallWatchdog
from web.health import Health

pytestmark = pytest.mark.component

TOPIC = "checkout.deposits"
TP = TopicPartition(TOPIC, 2)
START = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class Broker:
    """The broker as the watchdog's clients see it; ``outage`` names the call an outage fails."""

    def __init__(self, *, end: int = 9, first: int = 0) -> None:
        self.end = end
        self.first = first
        self.outage: str | None = None
        self.clients: list[FakeOffsetsClient] = []

    def connect(self) -> FakeOffsetsClient:
        client = FakeOffsetsClient(self)
        self.clients.append(client)
        return client


class FakeOffsetsClient:
    """A client that saw an outage stays broken, as issue 18's did after the broker was back."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.broken = False
        self.stopped = False

    def _call(self, name: str) -> None:
        if self.broken or self.broker.outage == name:
            self.broken = True
            # what issue 18's cached client answered every 5 s until the worker restarted
            raise AttributeError(f"'NoneType' object has no attribute '{name}'")

    async def start(self) -> None:
        if self.broker.outage == "start":
            self.broken = True
            raise ConnectionError("Unable to bootstrap from [('127.0.0.1', 9092)]")

    async def stop(self) -> None:
        self.stopped = True
        if self.broken:
            raise RuntimeError("the connection is already gone")

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if self.broker.outage == "hang":
            await asyncio.Event().wait()
        self._call("end_offsets")
        return dict.fromkeys(partitions, self.broker.end)

    async def beginning_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        self._call("beginning_offsets")
        return dict.fromkeys(partitions, self.broker.first)


class FakeConsumer:
    """The part of Faust's consumer the watchdog reads: one partition, stuck at offset 3."""

    def __init__(self, *, committed: int = 3, acked: list[int] | None = None) -> None:
        self.flow_active = True
        self._committed_offset = {TP: committed}
        self._read_offset = {TP: committed}
        self._acked = {TP: acked or []}
        self.seeks: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    async def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


def watchdog(broker: Broker, consumer: FakeConsumer, clock: Callable[[], float]) -> StallWatchdog:
    app: Any = SimpleNamespace(rebalancing=False, consumer=consumer)
    return StallWatchdog(
        app,
        {TOPIC},
        bootstrap_servers="127.0.0.1:9092",
        client_id="test-stall-watchdog",
        # a partition whose messages wait is stalled at once: every check that sees, seeks
        tracker=StallTracker(0, hole_seconds=0),
        connect=broker.connect,
        clock=clock,
    )


def failures() -> float:
    return REGISTRY.get_sample_value("checkout_stall_watchdog_failures_total") or 0.0


def last_check() -> float | None:
    return REGISTRY.get_sample_value("checkout_stall_watchdog_last_check_timestamp_seconds")


async def test_a_broken_client_is_dropped_and_the_next_check_connects_afresh() -> None:
    clock = Clock()
    broker = Broker()
    consumer = FakeConsumer()
    dog = watchdog(broker, consumer, clock)
    before = failures()
    assert last_check() == START  # its start, until the first check completes

    clock.now += 5
    await dog.check()
    assert consumer.seeks == [(TP, 3)]
    assert last_check() == START + 5

    for outage in ("end_offsets", "start"):  # the broker goes away, then will not take clients
        broker.outage = outage
        clock.now += 5
        await dog.check()  # stopping the broken client does not raise out of it
    assert failures() == before + 2
    assert last_check() == START + 5
    assert consumer.seeks == [(TP, 3)]
    assert [client.stopped for client in broker.clients] == [True, True]

    broker.outage = None  # back: the first client would still be broken
    clock.now += 5
    await dog.check()
    assert len(broker.clients) == 3
    assert consumer.seeks == [(TP, 3), (TP, 3)]  # the stalled partition is repaired again
    assert last_check() == START + 20
    assert failures() == before + 2

    clock.now += 5
    await dog.check()  # a working client is kept
    assert len(broker.clients) == 3 and not broker.clients[2].stopped
    await dog.close()
    assert broker.clients[2].stopped


async def test_a_read_that_hangs_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stall, "OFFSETS_TIMEOUT_SECONDS", 0.05)
    broker = Broker()
    broker.outage = "hang"
    consumer = FakeConsumer()
    dog = watchdog(broker, consumer, Clock())
    before = failures()
    await dog.check()
    assert failures() == before + 1
    assert broker.clients[0].stopped
    broker.outage = None
    await dog.check()
    assert consumer.seeks == [(TP, 3)]


async def test_a_failure_reading_the_first_offsets_drops_the_client_too() -> None:
    # A hole: offset 3 was skipped while 5 was acknowledged. Repairing it reads the broker's
    # first offset (was it deleted by retention?); that read fails like any other.
    broker = Broker(first=0)
    broker.outage = "beginning_offsets"
    consumer = FakeConsumer(committed=3, acked=[5])
    dog = watchdog(broker, consumer, Clock())
    before = failures()
    await dog.check()  # does not raise: a raising timer would crash the worker
    assert failures() == before + 1
    assert broker.clients[0].stopped
    assert consumer.seeks == [] and consumer._committed_offset[TP] == 3
    broker.outage = None
    await dog.check()
    assert consumer.seeks == [(TP, 3)]


async def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    broker = Broker()
    dog = watchdog(broker, FakeConsumer(), clock)
    broker.outage = "end_offsets"
    with caplog.at_level(logging.DEBUG, logger="app.runtime.stall"):
        for _ in range(12):
            clock.now += 5
            await dog.check()
        broker.outage = None
        clock.now += 5
        await dog.check()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    blind, seek, seeing = warnings
    assert blind.startswith("stall watchdog: cannot read the broker's offsets (AttributeError:")
    assert seeing == "stall watchdog: checking again after 60 s blind (12 failed checks)"
    assert "seeking to the committed offset" in seek


async def test_the_readiness_check_fails_after_a_minute_blind_and_recovers() -> None:
    clock = Clock()
    broker = Broker()
    dog = watchdog(broker, FakeConsumer(), clock)
    assert dog.readiness() == {"status": "up"}
    clock.now += 5
    await dog.check()  # reads offsets at START + 5

    broker.outage = "end_offsets"
    for _ in range(13):  # the first failure at START + 10
        clock.now += 5
        await dog.check()
    assert clock.now - (START + 10) == BLIND_SECONDS
    assert dog.readiness()["status"] == "up"  # a minute is not yet too long

    clock.now += 5
    await dog.check()
    assert dog.readiness() == {
        "status": "down",
        "failing_for_s": 65.0,
        "failures": 14,
        "error": (
            "the stall watchdog has not read offsets for 70 s: AttributeError: 'NoneType' object"
            " has no attribute 'end_offsets'"
        ),
    }

    broker.outage = None
    clock.now += 5
    await dog.check()
    assert dog.readiness() == {"status": "up"}
    assert last_check() == clock.now


@dataclass
class Worker:
    public: TestClient
    internal: TestClient
    blind_for: Callable[[float], Awaitable[None]]


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    """A worker's public and operators' listeners, its watchdog blind from the start."""
    clock = Clock()
    broker = Broker()
    broker.outage = "end_offsets"
    dog = watchdog(broker, FakeConsumer(), clock)

    async def kafka() -> None:
        return None

    health = Health(
        {"kafka": kafka},
        lambda: {"status": "up", "assigned": 1},
        advisories={"stall_watchdog": dog.readiness},
    )
    public, internal = web.Application(), web.Application()
    health.add_routes(public.router)
    health.add_internal_routes(internal.router)

    async def blind_for(seconds: float) -> None:
        for _ in range(int(seconds // 5)):
            clock.now += 5
            await dog.check()

    async with TestClient(TestServer(public)) as p, TestClient(TestServer(internal)) as i:
        yield Worker(p, i, blind_for)


async def test_a_blind_watchdog_is_degraded_on_the_operators_readyz_and_the_worker_stays_ready(
    worker: Worker,
) -> None:
    await worker.blind_for(30)
    detailed = await (await worker.internal.get("/readyz")).json()
    assert detailed["degraded"] == []
    assert detailed["advisories"]["stall_watchdog"]["status"] == "up"

    await worker.blind_for(60)
    answer = await worker.internal.get("/readyz")
    detailed = await answer.json()
    assert answer.status == 200 and detailed["status"] == "ready"
    assert detailed["degraded"] == ["stall_watchdog"]
    assert detailed["advisories"]["stall_watchdog"]["error"].startswith(
        "the stall watchdog has not read offsets for 90 s: AttributeError"
    )
    # what nginx and the orchestrator read: ready, and nothing about the watchdog
    answer = await worker.public.get("/readyz")
    assert (answer.status, await answer.json()) == (200, {"status": "ready"})
    # the checks that decide readiness are those they were
    assert set(detailed["checks"]) == {"kafka", "partitions"}
