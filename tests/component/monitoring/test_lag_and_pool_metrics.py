"""The consumer lag (from Faust's offsets gauges) and the PostgreSQL pool's use, as scraped."""

from __future__ import annotations

from typing import Any

import aiopg
import pytest
from prometheus_client import CollectorRegistry

from app.adapters.postgres import pool as pool_module
from app.adapters.postgres.pool import Database, PoolMetrics
from app.runtime.stream_metrics import faust_metrics

pytestmark = pytest.mark.component

LAG = "checkout_consumer_lag_messages"


def test_the_lag_sums_end_minus_committed_over_a_topics_partitions() -> None:
    registry = CollectorRegistry()
    metrics = faust_metrics(registry)
    ends, committed = metrics.topic_partition_end_offset, metrics.topic_partition_offset_commited
    ends.labels(topic="checkout.deposits", partition=0).set(120)
    committed.labels(topic="checkout.deposits", partition=0).set(100)
    ends.labels(topic="checkout.deposits", partition=1).set(50)
    committed.labels(topic="checkout.deposits", partition=1).set(50)
    ends.labels(topic="crypto-checkout.domain-events", partition=3).set(10)
    committed.labels(topic="crypto-checkout.domain-events", partition=3).set(12)  # never < 0
    # A changelog's partition is read, never committed: not a lag.
    ends.labels(topic="checkout-invoices-changelog", partition=0).set(5_000)

    assert registry.get_sample_value(LAG, {"topic": "checkout.deposits"}) == 20
    assert registry.get_sample_value(LAG, {"topic": "crypto-checkout.domain-events"}) == 0
    assert registry.get_sample_value(LAG, {"topic": "checkout-invoices-changelog"}) is None
    assert faust_metrics(registry) is metrics  # registered once


def test_after_a_rebalance_clears_the_offsets_there_is_no_lag_to_report() -> None:
    registry = CollectorRegistry()
    metrics = faust_metrics(registry)
    metrics.topic_partition_end_offset.labels(topic="checkout.deposits", partition=0).set(9)
    metrics.topic_partition_offset_commited.labels(topic="checkout.deposits", partition=0).set(1)
    metrics.clear_topic_related_metrics()  # what Faust's monitor does on a rebalance
    assert registry.get_sample_value(LAG, {"topic": "checkout.deposits"}) is None


class FakePool:
    def __init__(self, *, used: int, free: int, maxsize: int) -> None:
        self.size = used + free
        self.freesize = free
        self.maxsize = maxsize
        self.closed = False

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        return None


def scraped(registry: CollectorRegistry) -> dict[str, float | None]:
    return {
        "in_use": registry.get_sample_value("checkout_db_pool_connections", {"state": "in_use"}),
        "idle": registry.get_sample_value("checkout_db_pool_connections", {"state": "idle"}),
        "max": registry.get_sample_value("checkout_db_pool_max_connections"),
    }


def test_the_pool_metrics_read_the_open_pools_when_scraped() -> None:
    collector = PoolMetrics()
    registry = CollectorRegistry()
    registry.register(collector)
    assert scraped(registry) == {"in_use": None, "idle": None, "max": None}  # no pool open

    database = Database("postgresql://unused", maxsize=10, timeout=1.0)
    fake = FakePool(used=8, free=1, maxsize=10)
    database._pool = fake  # type: ignore[assignment]
    collector.add(database)
    assert scraped(registry) == {"in_use": 8, "idle": 1, "max": 10}

    fake.closed = True
    assert scraped(registry) == {"in_use": None, "idle": None, "max": None}


def test_a_broken_pool_never_breaks_a_scrape() -> None:
    collector = PoolMetrics()
    registry = CollectorRegistry()
    registry.register(collector)
    database = Database("postgresql://unused", maxsize=10, timeout=1.0)
    database._pool = object()  # type: ignore[assignment]
    collector.add(database)
    assert scraped(registry)["max"] is None


async def test_a_database_is_counted_from_open_to_close(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakePool(used=0, free=0, maxsize=7)

    async def create_pool(*_: Any, **__: Any) -> FakePool:
        return fake

    monkeypatch.setattr(aiopg, "create_pool", create_pool)
    database = Database("postgresql://unused", maxsize=7, timeout=1.0)
    await database.open()
    assert database in set(pool_module.OPEN_POOLS._pools)
    await database.close()
    assert database not in set(pool_module.OPEN_POOLS._pools)
