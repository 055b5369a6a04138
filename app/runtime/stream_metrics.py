"""Faust's own stream metrics, registered once per process, and the consumer lag from them.

``FaustMetrics.create`` registers its collectors in the registry it is given; a second call in
the same process (a second ``build()``: tests, ``faust`` CLI commands that build the platform
to inspect it) raises ``DuplicateTimeseries``. The collectors are process-wide like the
registry, so every platform built in the process shares them.

``checkout_consumer_lag_messages{topic}``: the messages waiting for this worker's agents, per
topic: for each partition the worker consumes, the end offset its consumer last saw
(``checkout_topic_partition_end_offset``) minus its last committed offset
(``checkout_topic_partition_offset_commited``). Computed when Prometheus scrapes; a partition
without a commit since the last rebalance is left out until its first commit (tables'
changelogs are never committed, so they are never counted). Summed over the workers, it is the
platform's event processing lag (monitoring/alerts.yml).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator

from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

_CREATED: dict[int, FaustMetrics] = {}

LAG_NAME = "checkout_consumer_lag_messages"
LAG_HELP = "Messages after the committed offset of the partitions this worker consumes, by topic"


def faust_metrics(registry: CollectorRegistry, namespace: str = "checkout") -> FaustMetrics:
    """The process's Faust metrics in ``registry``, created on first use."""
    key = id(registry)
    if key not in _CREATED:
        metrics = FaustMetrics.create(registry, namespace)
        registry.register(ConsumerLag(metrics))
        _CREATED[key] = metrics
    return _CREATED[key]


def _by_partition(gauge: Gauge) -> dict[tuple[str, str], float]:
    # Faust's own gauges, labelled topic and partition (faust.sensors.prometheus).
    return {
        (sample.labels["topic"], sample.labels["partition"]): sample.value
        for family in gauge.collect()
        for sample in family.samples
    }


class ConsumerLag(Collector):
    """``checkout_consumer_lag_messages{topic}`` from Faust's end and committed offsets."""

    def __init__(self, metrics: FaustMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(LAG_NAME, LAG_HELP, labels=["topic"])]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(LAG_NAME, LAG_HELP, labels=["topic"])
        try:
            ends = _by_partition(self._metrics.topic_partition_end_offset)
            committed = _by_partition(self._metrics.topic_partition_offset_commited)
            lag: dict[str, float] = defaultdict(float)
            for (topic, partition), end in ends.items():
                done = committed.get((topic, partition))
                if done is not None:
                    lag[topic] += max(0.0, end - done)
            for topic in sorted(lag):
                family.add_metric([topic], lag[topic])
        except Exception:  # a scrape must never break anything
            logger.exception("consumer lag not read")
            return
        yield family
