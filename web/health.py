"""Operator endpoints: liveness, readiness.

``/healthz`` says the process answers (restart it if not); ``/readyz`` says whether it can do its
work right now (stop routing to it if not), naming each dependency's state. ``/metrics`` is set up
in app/faust_app.py with Faust's Prometheus sensor.
"""

from __future__ import annotations

from faust import web

from app.adapters.readiness import check_dependencies
from app.faust_app import app, resources


@app.page("/healthz")
class Healthz(web.View):
    async def get(self, request: web.Request) -> web.Response:
        return self.json({"status": "alive"})


@app.page("/readyz")
class Readyz(web.View):
    async def get(self, request: web.Request) -> web.Response:
        results = await check_dependencies(resources)
        checks = {result.name: result.as_json() for result in results}
        checks["partitions"] = partitions_check()
        ready = all(check["status"] == "up" for check in checks.values())
        body = {"status": "ready" if ready else "unready", "checks": checks}
        return self.json(body, status=200 if ready else 503)


def partitions_check() -> dict[str, object]:
    """Whether this worker's agents own partitions and are not rebalancing or restoring tables.

    A worker is not ready to answer for invoices while its consumer has no assignment, a
    rebalance is in progress, or its tables are being restored from their changelogs.
    """
    assigned = len(app.consumer.assignment())
    recovering = bool(getattr(app, "in_recovery", False))
    if assigned and not app.rebalancing and not recovering:
        return {"status": "up", "assigned": assigned}
    reason = (
        "rebalancing" if app.rebalancing else "restoring tables" if recovering else "no partitions"
    )
    return {"status": "down", "assigned": assigned, "error": reason}
