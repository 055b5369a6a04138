"""Operator endpoints: liveness, readiness, metrics.

``/healthz`` says the process answers (restart it if not); ``/readyz`` says whether it can do its
work right now (stop routing to it if not). On the public port ``/readyz`` says only that, for
load balancers; on the operators' listener (INTERNAL_BIND:INTERNAL_PORT, app/runtime/web_server.py)
it names each dependency's state and the worker's partitions, and ``/metrics`` serves Prometheus
(Faust's stream sensors and ours, all in prometheus_client's default registry).

Advisories (``advisories=``) are safety mechanisms that cannot run right now, such as the stall
watchdog (app/runtime/stall.py) blind to the broker's offsets. They are reported on the
operators' listener only, listed under ``degraded``, and never make the worker unready: its API
and agents still work, and the watchdog repairs a rare Faust defect. Failing the public
``/readyz`` would only cost capacity: nginx routes HTTP, not Kafka partitions, so no other worker
would take over the watchdog's partitions, and a cause shared by every worker (the broker) would
take them all out at once. A dependency that is really down already fails its probe; an
operator learns of the rest from the alert (StallWatchdogBlind, docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web as aioweb
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from app.adapters.readiness import Probe, check_dependencies

# A check answered from memory: ``{"status": "up" | "down", ...}``, with an ``error`` when down.
Check = Callable[[], dict[str, object]]


class Health:
    def __init__(
        self,
        probes: Mapping[str, Probe],
        partitions: Check,
        *,
        advisories: Mapping[str, Check] | None = None,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self._probes = probes
        self._partitions = partitions
        self._advisories = dict(advisories or {})
        self._registry = registry

    def add_routes(self, router: aioweb.UrlDispatcher) -> None:
        """The public port: liveness and a bare readiness."""
        router.add_get("/healthz", self.healthz)
        router.add_get("/readyz", self.readyz)

    def add_internal_routes(self, router: aioweb.UrlDispatcher) -> None:
        """The operators' listener: the detailed readiness and the metrics."""
        router.add_get("/healthz", self.healthz)
        router.add_get("/readyz", self.readyz_detailed)
        router.add_get("/metrics", self.metrics)

    async def healthz(self, request: aioweb.Request) -> aioweb.Response:
        return aioweb.json_response({"status": "alive"})

    async def _checks(self) -> tuple[bool, dict[str, Any]]:
        results = await check_dependencies(self._probes)
        checks: dict[str, Any] = {result.name: result.as_json() for result in results}
        checks["partitions"] = self._partitions()
        return all(check["status"] == "up" for check in checks.values()), checks

    async def readyz(self, request: aioweb.Request) -> aioweb.Response:
        ready, _ = await self._checks()
        status = "ready" if ready else "unready"
        return aioweb.json_response({"status": status}, status=200 if ready else 503)

    async def readyz_detailed(self, request: aioweb.Request) -> aioweb.Response:
        ready, checks = await self._checks()
        body: dict[str, Any] = {"status": "ready" if ready else "unready", "checks": checks}
        if self._advisories:
            # Reported, never deciding "status" (the module's docstring says why).
            advisories = {name: check() for name, check in self._advisories.items()}
            body["advisories"] = advisories
            body["degraded"] = sorted(
                name for name, result in advisories.items() if result["status"] != "up"
            )
        return aioweb.json_response(body, status=200 if ready else 503)

    async def metrics(self, request: aioweb.Request) -> aioweb.Response:
        return aioweb.Response(
            body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
