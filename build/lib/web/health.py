"""Operator endpoints: liveness, readiness.

``/healthz`` says the process answers (restart it if not); ``/readyz`` says whether it can do its
work right now (stop routing to it if not), naming each dependency's state and whether the worker
owns partitions. ``/metrics`` is Faust's Prometheus sensor, set up in app/bootstrap.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web as aioweb

from app.adapters.readiness import Probe, check_dependencies


class Health:
    def __init__(
        self, probes: Mapping[str, Probe], partitions: Callable[[], dict[str, object]]
    ) -> None:
        self._probes = probes
        self._partitions = partitions

    def add_routes(self, router: aioweb.UrlDispatcher) -> None:
        router.add_get("/healthz", self.healthz)
        router.add_get("/readyz", self.readyz)

    async def healthz(self, request: aioweb.Request) -> aioweb.Response:
        return aioweb.json_response({"status": "alive"})

    async def readyz(self, request: aioweb.Request) -> aioweb.Response:
        results = await check_dependencies(self._probes)
        checks = {result.name: result.as_json() for result in results}
        checks["partitions"] = self._partitions()
        ready = all(check["status"] == "up" for check in checks.values())
        body = {"status": "ready" if ready else "unready", "checks": checks}
        return aioweb.json_response(body, status=200 if ready else 503)
