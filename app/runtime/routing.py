"""Serve a single-aggregate request on the worker that owns the aggregate's table partition.

Faust keeps each table partition on one worker. A request for invoice X that lands on another
worker is forwarded, method, query, body and the headers that matter, to the owner's canonical
URL through the app's one HTTP client, and the owner's answer is returned as it is. (Faust's own
``table_route`` forwards no body, so cancellation reasons would be lost.) A request already
forwarded once is never forwarded again: during a rebalance the client gets a 503 to retry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import faust
from aiohttp import web as aioweb
from yarl import URL

from app.faust_app import app
from web.errors import ApiError

ROUTED_FROM = "X-Checkout-Routed-From"
SERVED_BY = "X-Checkout-Served-By"
_FORWARDED_HEADERS = ("Authorization", "Content-Type", "Accept", "Idempotency-Key")


def _unavailable(reason: str) -> ApiError:
    return ApiError(
        503,
        "temporarily_unavailable",
        f"{reason}; retry in a moment",
        headers={"Retry-After": "1"},
    )


def same_worker(url: URL) -> bool:
    own = URL(str(app.conf.canonical_url))
    return (url.host, url.port) == (own.host, own.port)


async def serve_from_owner(
    request: aioweb.Request,
    table: faust.types.CollectionT,
    key: str,
    handler: Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]],
) -> aioweb.StreamResponse:
    try:
        owner = URL(str(app.router.key_store(table.name, key)))
    except KeyError:
        raise _unavailable("the partition holding this object has no worker yet") from None
    if same_worker(owner):
        if app.rebalancing or getattr(app, "in_recovery", False):
            raise _unavailable("this worker is restoring its state")
        response = await handler(request)
        response.headers[SERVED_BY] = str(app.conf.canonical_url)
        return response
    if ROUTED_FROM in request.headers:
        raise _unavailable("workers are rebalancing")
    headers = {
        name: request.headers[name] for name in _FORWARDED_HEADERS if name in request.headers
    }
    headers[ROUTED_FROM] = str(app.conf.canonical_url)
    target = owner.with_path(request.path).with_query(request.query)
    try:
        async with app.http_client.request(
            request.method, target, headers=headers, data=await request.read()
        ) as answer:
            body = await answer.read()
            passed = {
                name: answer.headers[name]
                for name in ("Retry-After", SERVED_BY)
                if name in answer.headers
            }
            return aioweb.Response(
                body=body, status=answer.status, content_type=answer.content_type, headers=passed
            )
    except aiohttp.ClientError:
        # The owner just left (stopping, crashed): its partitions move to another worker.
        raise _unavailable("the worker owning this object is unreachable") from None
