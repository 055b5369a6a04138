"""Operator endpoints: liveness, readiness.

``/healthz`` says the process answers (restart it if not); ``/readyz`` says whether it can do its
work right now (stop routing to it if not), naming each dependency's state. ``/metrics`` is set up
in app/faust_app.py with Faust's Prometheus sensor.
"""

from __future__ import annotations

from faust import web

from app.faust_app import app, resources
from app.readiness import check_dependencies


@app.page("/healthz")
class Healthz(web.View):
    async def get(self, request: web.Request) -> web.Response:
        return self.json({"status": "alive"})


@app.page("/readyz")
class Readyz(web.View):
    async def get(self, request: web.Request) -> web.Response:
        results = await check_dependencies(resources)
        ready = all(result.up for result in results)
        body = {
            "status": "ready" if ready else "unready",
            "checks": {result.name: result.as_json() for result in results},
        }
        return self.json(body, status=200 if ready else 503)
