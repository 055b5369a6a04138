"""Every route the worker serves is described in /openapi.json, and nothing else is."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.component

OUR_PREFIXES = ("/api/", "/pay/", "/internal/", "/healthz", "/readyz", "/metrics", "/openapi")


def served_routes() -> set[tuple[str, str]]:
    import importlib
    import pkgutil

    import web
    from app.faust_app import aiohttp_application, app

    for module in pkgutil.iter_modules(web.__path__):  # importing a module registers its routes
        importlib.import_module(f"web.{module.name}")

    app.web.init_server()  # Faust adds its own pages (health, metrics) to the router here
    routes = set()
    for route in aiohttp_application().router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        ours = path and path.startswith(OUR_PREFIXES)
        if ours and route.method in {"GET", "POST", "PATCH", "DELETE"}:
            routes.add((route.method.lower(), path))
    return routes


def test_openapi_describes_exactly_the_served_routes() -> None:
    from web.openapi import openapi_document

    document = openapi_document()
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    assert served_routes() == described
