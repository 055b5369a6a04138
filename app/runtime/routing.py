"""Serve a single-aggregate request on the worker that owns the aggregate's table partition.

Faust keeps each table partition on one worker. A request for invoice X that lands on another
worker is forwarded, method, query, body and the headers that matter, to the owner's canonical
URL through the app's one HTTP client, and the owner's answer is returned as it is. (Faust's own
``table_route`` forwards no body, so cancellation reasons would be lost.) A request already
forwarded once is never forwarded again: during a rebalance the client gets a 503 to retry.
Forwarded requests are signed (app/runtime/worker_signatures.py) and carry the client's address,
its request id, and the trace context of the request being served (the owner's span continues it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp
import faust
from aiohttp import web as aioweb
from aiokafka.errors import KafkaError
from faust.exceptions import NotReady
from yarl import URL

from app.adapters.telemetry import current_request_id, http_headers
from app.runtime.worker_signatures import ROUTED_FROM, WorkerSignatures
from app.services.errors import DependencyUnavailable

logger = logging.getLogger(__name__)

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
        self._learning: asyncio.Future[None] | None = None

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
        except TypeError:
            # aiokafka hashes a key to a partition only for a topic whose partitions its producer
            # knows — one it has sent to or asked about. A worker that has written nothing to
            # this table's changelog yet does not; ask now, and let the client retry.
            self._learning = self._learning or asyncio.ensure_future(self._learn(table))
            raise WorkerUnavailable("this worker is still looking up the cluster; retry") from None

    async def _learn(self, table: str) -> None:
        """Make the producer fetch the partitions of ``table``'s changelog topic (bounded)."""
        try:
            topic = self._app.tables[table].changelog_topic.get_topic_name()
            producer = self._app.producer._ensure_producer()  # type: ignore[attr-defined]
            if producer._metadata.partitions_for_topic(topic) is None:
                async with asyncio.timeout(_OWNER_TIMEOUT.total or 5):
                    await producer.partitions_for(topic)
        except NotReady:
            raise WorkerUnavailable("this worker is starting; retry in a moment") from None
        except (TimeoutError, KafkaError) as exc:
            logger.warning("routing: the partitions of %s's changelog are unknown: %s", table, exc)
        finally:
            self._learning = None

    def _same_worker(self, url: URL) -> bool:
        own = URL(self._own_url)
        return (url.host, url.port) == (own.host, own.port)

    def is_local(self, table: str, key: str) -> bool:
        return self._same_worker(self._owner(table, key))

    async def serve(
        self, request: aioweb.Request, table: str, key: str, handler: Handler
    ) -> aioweb.StreamResponse:
        await self._learn(table)
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
        headers |= http_headers()  # traceparent: the owner's span is a child of this one
        request_id = current_request_id()
        if request_id is not None:  # the owner logs and answers under the same id
            headers["X-Request-Id"] = request_id
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
        await self._learn(table)
        try:
            owner = self._owner(table, key)
        except WorkerUnavailable:
            return None
        try:
            headers = http_headers() | self._signatures.headers(
                "GET", path, b"", routed_from=self._own_url, client_address="worker"
            )
            async with self._app.http_client.get(
                owner.with_path(path), headers=headers, timeout=_OWNER_TIMEOUT
            ) as response:
                return await response.json() if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError):
            return None
