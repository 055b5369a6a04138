"""Faust's own stream metrics, registered once per process.

``FaustMetrics.create`` registers its collectors in the registry it is given; a second call in
the same process (a second ``build()``: tests, ``faust`` CLI commands that build the platform
to inspect it) raises ``DuplicateTimeseries``. The collectors are process-wide like the
registry, so every platform built in the process shares them.
"""

from __future__ import annotations

from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry

_CREATED: dict[int, FaustMetrics] = {}


def faust_metrics(registry: CollectorRegistry, namespace: str = "checkout") -> FaustMetrics:
    """The process's Faust metrics in ``registry``, created on first use."""
    key = id(registry)
    if key not in _CREATED:
        _CREATED[key] = FaustMetrics.create(registry, namespace)
    return _CREATED[key]
