"""A span for each HTTP request, and the request's id for the logs.

``request_tracing`` (a middleware, outermost of ``web.MIDDLEWARES``, just inside the audit log)
keeps the request id the audit trail gave the request (web/audit.py: the client's or nginx's own
``X-Request-Id`` when it is a sane one, else a new ``req_…``) as the current request id while the
request is served, so every log line written meanwhile names it (app/adapters/logs.py), and the
500 answer quotes it (web/errors.py).

With tracing on (app/adapters/telemetry.py) the request is a SERVER span named
``"{method} {route template}"`` (web/request_metrics.py's template: never the path, whose ids
would make a span name per invoice), continuing the caller's ``traceparent`` when it sent one.
The probes and the metrics are not traced: they are asked every few seconds and say nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web as aioweb

from app.adapters import telemetry
from web.audit import REQUEST_ID
from web.request_metrics import UNMATCHED, route_of

Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]

UNTRACED_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})


def request_id_of(request: aioweb.Request) -> str:
    """The audit trail's id for the request; a new one where no audit trail runs (tests)."""
    request_id = request.get(REQUEST_ID)
    if request_id is None:
        request_id = request[REQUEST_ID] = f"req_{secrets.token_hex(8)}"
    return request_id


@aioweb.middleware
async def request_tracing(request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
    request_id = request_id_of(request)
    token = telemetry.set_request_id(request_id)
    try:
        if not telemetry.active() or request.path in UNTRACED_PATHS:
            return await handler(request)
        return await _traced(request, handler, request_id)
    finally:
        telemetry.reset_request_id(token)


async def _traced(
    request: aioweb.Request, handler: Handler, request_id: str
) -> aioweb.StreamResponse:
    route = route_of(request)
    name = request.method if route == UNMATCHED else f"{request.method} {route}"
    attributes = {
        "http.request.method": request.method,
        "url.path": request.path,
        "request.id": request_id,
    }
    if route != UNMATCHED:
        attributes["http.route"] = route
    with telemetry.server_span(name, request.headers, attributes) as span:
        try:
            response = await handler(request)
        except aioweb.HTTPException as exc:  # what the error middleware lets through (redirects)
            span.set_attribute("http.response.status_code", exc.status)
            raise
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            telemetry.mark_failed(span)
        return response
