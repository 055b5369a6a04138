"""How long the worker takes to answer, per route: the API latency of monitoring/alerts.yml.

``request_metrics`` (a middleware, just inside the audit log) times every request of the public
listener and labels it with its route's template (``/api/v1/invoices/{invoice_id}``, never the
path itself: ids would make a series per invoice) and method; a path no route matches is
``unmatched``.

- ``checkout_http_request_duration_seconds{method,route}``: requests answered with a whole
  response. Streams (the payment page's WebSocket and server-sent events, CSV exports) last as
  long as the client stays and are left out: they would say nothing of how fast the API is.
- ``checkout_http_responses_total{method,route,status}``: every answer, streams included, by
  status class (``2xx`` … ``5xx``).

The audit entry of a state-changing request is written after this middleware has answered, so
its time is not counted. A metric never changes the answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web as aioweb
from prometheus_client import Counter, Histogram

logger = logging.getLogger(__name__)

Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]

UNMATCHED: Final = "unmatched"

REQUEST_SECONDS = Histogram(
    "checkout_http_request_duration_seconds",
    "Time to answer an HTTP request with a whole response, by route template (streams excluded)",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 10),
)
RESPONSES = Counter(
    "checkout_http_responses",
    "HTTP answers by route template and status class (2xx, 3xx, 4xx, 5xx)",
    ["method", "route", "status"],
)


def route_of(request: aioweb.Request) -> str:
    """The template of the route that matched, or ``unmatched``: never the path itself."""
    resource = request.match_info.route.resource
    if resource is None:
        return UNMATCHED
    return resource.canonical


def _record(request: aioweb.Request, status: int, seconds: float | None) -> None:
    try:
        route = route_of(request)
        RESPONSES.labels(method=request.method, route=route, status=f"{status // 100}xx").inc()
        if seconds is not None:
            REQUEST_SECONDS.labels(method=request.method, route=route).observe(seconds)
    except Exception:  # a metric must never change the answer
        logger.exception("request metrics of %s %s not recorded", request.method, request.path)


@aioweb.middleware
async def request_metrics(request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
    started = time.perf_counter()
    try:
        response = await handler(request)
    except aioweb.HTTPException as exc:  # what the error middleware lets through (redirects)
        _record(request, exc.status, time.perf_counter() - started)
        raise
    # A whole response is a ``Response``; a stream is a bare ``StreamResponse`` or a WebSocket.
    whole = isinstance(response, aioweb.Response)
    _record(request, response.status, time.perf_counter() - started if whole else None)
    return response
