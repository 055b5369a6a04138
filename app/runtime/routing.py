"""Serve a single-aggregate request on the worker that owns the aggregate's table partition.

Faust keeps each table partition on one worker. A request for invoice X that lands on another
worker is forwarded, method, query, body and the headers that matter, to the owner's canonical
URL through the app's one HTTP client, and the owner's answer is returned as it is. (Faust's own
``table_route`` forwards no body, so cancellation reasons would be lost.) A request already
forwarded once is never forwarded again: during a rebalance the client gets a 503 to retry.
Forwarded requests are signed (app/runtime/worker_signatures.py) and carry the client's address.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp
import faust
from aiohttp import web as aioweb
from yarl import URL

from app.runtime.worker_signatures import ROUTED_FROM, WorkerSignatures
from app.services.errors import DependencyUnavailable

SERVED_BY = "X-Checkout-Served-By"
_FORWARDED_HEADERS = ("Authorization", "Content-Type", "Accept", "Idempotency-Key")
_OWNER_TIMEOUT = aiohttp.ClientTimeout(total=5)

Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]
BodyReader = Callable[[aioweb.Request], Awaitable[bytes]]


class WorkerUnavailable(DependencyUnavailable):
    """The worker owning the object cannot answer right now (rebalancing, restoring, gone)."""


class Routing(Protocol):
    """What the views need of owner routing (``OwnerRouting``; tests serve everything locally)."""

    async def serve(
        self, request: aioweb.Request, table: str, key: str, handler: Handler
    ) -> aioweb.StreamResponse: ...

    async def read_from_owner(self, table: str, key: str, path: str) -> Any | None: ...

    def is_local(self, table: str, key: str) -> bool: ...


class OwnerRouting:
    """Routing of one worker, through its Faust app's table router and HTTP client.

    ``read_body`` reads a request's body within the size limit; ``client_address`` says whose
    request it is (both from web/, which owns the edge's rules).
    """

    def __init__(
        self,
        app: faust.App,
        signatures: WorkerSignatures,
        *,
        read_body: BodyReader,
        client_address: Callable[[aioweb.Request], str],
    ) -> None:
        self._app = app
        self._signatures = signatures
        self._read_body = read_body
        self._client_address = client_address

    @property
    def _own_url(self) -> str:
        return str(self._app.conf.canonical_url)

    def _owner(self, table: str, key: str) -> URL:
        try:
            return URL(str(self._app.router.key_store(table, key)))
        except KeyError:
            raise WorkerUnavailable(
                "the partition holding this object has no worker yet; retry in a moment"
            ) from None

    def _same_worker(self, url: URL) -> bool:
        own = URL(self._own_url)
        return (url.host, url.port) == (own.host, own.port)

    def is_local(self, table: str, key: str) -> bool:
        return self._same_worker(self._owner(table, key))

    async def serve(
        self, request: aioweb.Request, table: str, key: str, handler: Handler
    ) -> aioweb.StreamResponse:
        owner = self._owner(table, key)
        if self._same_worker(owner):
            if self._app.rebalancing or getattr(self._app, "in_recovery", False):
                raise WorkerUnavailable("this worker is restoring its state; retry in a moment")
            response = await handler(request)
            response.headers[SERVED_BY] = self._own_url
            return response
        if ROUTED_FROM in request.headers:
            raise WorkerUnavailable("workers are rebalancing; retry in a moment")
        body = await self._read_body(request)
        headers = {
            name: request.headers[name] for name in _FORWARDED_HEADERS if name in request.headers
        }
        headers |= self._signatures.headers(
            request.method,
            request.raw_path,
            body,
            routed_from=self._own_url,
            client_address=self._client_address(request),
        )
        # The path and query exactly as the client sent them (a bare ``?flag`` stays bare): what
        # is signed is what the owner receives.
        target = owner.join(URL(request.raw_path, encoded=True))
        try:
            async with self._app.http_client.request(
                request.method, target, headers=headers, data=body
            ) as answer:
                body = await answer.read()
                passed = {
                    name: answer.headers[name]
                    for name in ("Retry-After", SERVED_BY)
                    if name in answer.headers
                }
                return aioweb.Response(
                    body=body,
                    status=answer.status,
                    content_type=answer.content_type,
                    headers=passed,
                )
        except aiohttp.ClientError:
            # The owner just left (stopping, crashed): its partitions move to another worker.
            raise WorkerUnavailable(
                "the worker owning this object is unreachable; retry in a moment"
            ) from None

    async def read_from_owner(self, table: str, key: str, path: str) -> Any | None:
        """GET ``path`` (JSON) from the worker owning ``key``; None when it cannot answer."""
        try:
            owner = self._owner(table, key)
        except WorkerUnavailable:
            return None
        try:
            headers = self._signatures.headers(
                "GET", path, b"", routed_from=self._own_url, client_address="worker"
            )
            async with self._app.http_client.get(
                owner.with_path(path), headers=headers, timeout=_OWNER_TIMEOUT
            ) as response:
                return await response.json() if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError):
            return None
