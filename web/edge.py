"""Who is asking: the client's address, and whether a request really comes from another worker.

``EdgeGuard.middleware`` runs before any view. It leaves on each request:

- ``CLIENT_ADDRESS``: the address the rate limits and the audit log use. It is the peer's
  address, unless the peer is one of ``TRUSTED_PROXIES``: then the right-most address of
  ``X-Forwarded-For`` that is not itself a trusted proxy (the left part of the header is whatever
  the client wrote, so it is never believed).
- ``FROM_WORKER``: True when another worker forwarded the request, which the worker proves with
  a signature under ``INTERNAL_SECRET`` (app/runtime/worker_signatures.py). Such a request
  carries the original client's address and is not rate limited twice.
- ``VIA_DASHBOARD``: True for the dashboard's own calls to the API on a browser's behalf
  (web/dashboard/api.py), signed the same way with ``routed_from="dashboard"``. They are *not*
  worker requests: the caller's own rate-limit tier is charged and the audit log records them
  with the user and the browser's address; only the global and per-address tiers, charged when
  the browser's request reached the dashboard, are not charged again.

A request that claims to come from a worker (any of its headers) or asks for ``/internal/…``
without a valid signature is a 401, whatever else it carries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Final

from aiohttp import web as aioweb

from app.runtime.worker_signatures import (
    WORKER_HEADERS,
    BadWorkerSignature,
    WorkerSignatures,
)
from web.errors import ApiError
from web.input import read_capped

CLIENT_ADDRESS: Final = aioweb.RequestKey("checkout.client_address", str)
FROM_WORKER: Final = aioweb.RequestKey("checkout.from_worker", bool)
VIA_DASHBOARD: Final = aioweb.RequestKey("checkout.via_dashboard", bool)
DASHBOARD: Final = "dashboard"  # routed_from of the dashboard's own API calls
INTERNAL_PREFIX: Final = "/internal/"
_MAX_FORWARDED_HOPS: Final = 16

Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]
Network = IPv4Network | IPv6Network


def client_address(request: aioweb.Request) -> str:
    """The client's address as ``EdgeGuard`` found it ("unknown" outside a worker's stack)."""
    return request.get(CLIENT_ADDRESS) or request.remote or "unknown"


def from_worker(request: aioweb.Request) -> bool:
    return request.get(FROM_WORKER, False)


def via_dashboard(request: aioweb.Request) -> bool:
    return request.get(VIA_DASHBOARD, False)


class ClientAddresses:
    def __init__(self, trusted_proxies: Iterable[Network] = ()) -> None:
        self._trusted = tuple(trusted_proxies)

    def _is_trusted(self, address: IPv4Address | IPv6Address) -> bool:
        return any(address in network for network in self._trusted)

    def of(self, peer: str | None, forwarded_for: str | None) -> str:
        if peer is None:
            return "unknown"
        try:
            current = ip_address(peer)
        except ValueError:
            return peer  # a unix socket: no address to limit by
        if not self._trusted or forwarded_for is None:
            return str(current)
        hops = [hop.strip() for hop in forwarded_for.split(",")][-_MAX_FORWARDED_HOPS:]
        # Walk from the peer towards the client while the hop we stand on is a trusted proxy.
        while self._is_trusted(current) and hops:
            try:
                current = ip_address(hops.pop())
            except ValueError:
                break  # a trusted proxy wrote garbage: the proxy's own address it is
        return str(current)


class EdgeGuard:
    def __init__(self, signatures: WorkerSignatures, addresses: ClientAddresses) -> None:
        self._signatures = signatures
        self._addresses = addresses

    @aioweb.middleware
    async def middleware(self, request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
        claims_worker = any(name in request.headers for name in WORKER_HEADERS)
        if claims_worker or request.path.startswith(INTERNAL_PREFIX):
            body = await read_capped(request)
            try:
                worker = self._signatures.verify(
                    request.method, request.raw_path, body, request.headers
                )
            except BadWorkerSignature as exc:
                raise ApiError(
                    401,
                    "invalid_worker_signature",
                    f"only workers may send this request: {exc}",
                ) from None
            dashboard = worker.routed_from == DASHBOARD
            request[FROM_WORKER] = not dashboard
            request[VIA_DASHBOARD] = dashboard
            request[CLIENT_ADDRESS] = worker.client_address
        else:
            # Every X-Forwarded-For line, in order: a proxy may add a line rather than append.
            lines = request.headers.getall("X-Forwarded-For", [])
            request[CLIENT_ADDRESS] = self._addresses.of(
                request.remote, ",".join(lines) if lines else None
            )
        return await handler(request)
