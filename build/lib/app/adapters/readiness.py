"""Is this worker able to do its job? One probe per dependency, run together, each time-boxed.

``/readyz`` answers from here; a load balancer or orchestrator stops sending traffic to a worker
whose PostgreSQL, Redis or Kafka is unreachable, and the JSON says which one and why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from prometheus_client import Gauge

# How long one health probe may take before it counts as "down".
PROBE_TIMEOUT_SECONDS = 2.0

DEPENDENCY_UP = Gauge(
    "checkout_dependency_up",
    "1 when the last readiness probe reached the dependency, 0 when it did not",
    ["dependency"],
)


@dataclass(frozen=True)
class ProbeResult:
    name: str
    up: bool
    latency_ms: float
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "status": "up" if self.up else "down",
            "latency_ms": round(self.latency_ms, 1),
        }
        if self.error is not None:
            body["error"] = self.error
        return body


Probe = Callable[[], Awaitable[None]]


async def _run(name: str, probe: Probe) -> ProbeResult:
    started = time.perf_counter()
    error: str | None = None
    try:
        await asyncio.wait_for(probe(), timeout=PROBE_TIMEOUT_SECONDS)
    except TimeoutError:
        error = f"no answer within {PROBE_TIMEOUT_SECONDS:.0f} s"
    except Exception as exc:
        # Any failure of a probe means "down"; the reason goes into the JSON for the operator.
        error = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    result = ProbeResult(name, error is None, (time.perf_counter() - started) * 1000, error)
    DEPENDENCY_UP.labels(dependency=name).set(1 if result.up else 0)
    return result


async def check_dependencies(probes: Mapping[str, Probe]) -> list[ProbeResult]:
    """Every probe at once, each time-boxed; the worker's probes are wired in app/bootstrap.py."""
    return list(await asyncio.gather(*(_run(name, probe) for name, probe in probes.items())))
