"""Every route the worker serves is described in /openapi.json, and nothing else is."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.bootstrap import build
from app.settings import Settings
from web.openapi import openapi_document

pytestmark = pytest.mark.component

# Worker-to-worker routes (/internal/…) are ours but not the public API's: they need a worker's
# signature (web/edge.py), so the document leaves them out; the test below checks they are signed.
OUR_PREFIXES = ("/api/", "/pay/", "/healthz", "/readyz", "/metrics", "/openapi", "/router")


def served_routes(data_dir: Path) -> set[tuple[str, str]]:
    # The worker's wiring, built as `checkout worker` builds it (nothing is started).
    platform = build(Settings(data_dir=data_dir, store="memory://"))
    platform.app.web.init_server()  # Faust adds its own pages (metrics) to the router here
    routes = set()
    for route in platform.web.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        ours = path and path.startswith(OUR_PREFIXES)
        if ours and route.method in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
            routes.add((route.method.lower(), path))
    return routes


def test_openapi_describes_exactly_the_served_routes(tmp_path: Path) -> None:
    document = openapi_document()
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    assert served_routes(tmp_path) == described
