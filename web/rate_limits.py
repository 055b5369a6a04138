"""The rate-limit tiers, in one place (docs/security.md has the table).

Before any other work (``RequestLimits.middleware``, right after the edge knows the client):

- **global** (``RATE_LIMIT_GLOBAL``, 1000/second): every request to the platform, all workers;
- **ip** (``RATE_LIMIT_IP``, 100/minute): per client address, public and unauthenticated
  requests included (``X-Forwarded-For`` believed only from ``TRUSTED_PROXIES``, web/edge.py).

Once the caller is known (``charge``, called by web/auth.py right after authentication, before
the view does anything):

- **invoice_create** (``RATE_LIMIT_INVOICE_CREATE``, 1000/hour): ``POST /api/v1/invoices`` per
  API key or user;
- **reads** (``RATE_LIMIT_READS``, 5000/hour): every other authenticated request per key or user.

A refused request is a 429 ``rate_limit_exceeded`` naming the tier, with ``Retry-After``. Every
response carries ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` (seconds)
of the narrowest tier that applied: the key's on merchant endpoints, the address's elsewhere.
Requests a worker forwarded to another were counted where they arrived and are not counted
again. Liveness and readiness probes are never limited. When Redis is down the limiter lets
everything through (app/adapters/redis/rate_limits.py: a metric and a log line say so).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web as aioweb

from app.domain.access import Principal
from app.services.rate_limits import Decision, Limiter, Rate
from web.edge import client_address, from_worker, via_dashboard
from web.errors import ApiError

Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]

DECISION: Final = aioweb.RequestKey("checkout.rate_limit", Decision)
_UNLIMITED_PATHS: Final = frozenset({"/healthz", "/readyz"})


@dataclass(frozen=True)
class RateTiers:
    invoice_create: Rate
    reads: Rate
    ip: Rate
    global_: Rate


def exceeded(tier: str, decision: Decision) -> ApiError:
    retry = max(1, math.ceil(decision.retry_after))
    return ApiError(
        429,
        "rate_limit_exceeded",
        f"the {tier} rate limit of {decision.limit} requests is used up; retry in {retry} s",
        param=tier,
        headers={"Retry-After": str(retry), **limit_headers(decision)},
    )


def limit_headers(decision: Decision) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(math.ceil(decision.reset_after)),
    }


class RequestLimits:
    def __init__(self, limiter: Limiter, tiers: RateTiers) -> None:
        self._limiter = limiter
        self._tiers = tiers

    def install(self, app: aioweb.Application) -> None:
        app.on_response_prepare.append(self._add_headers)

    @aioweb.middleware
    async def middleware(self, request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
        if from_worker(request) or via_dashboard(request) or request.path in _UNLIMITED_PATHS:
            return await handler(request)
        overall, by_address = await asyncio.gather(
            self._limiter.hit("global", self._tiers.global_),
            self._limiter.hit(f"ip:{client_address(request)}", self._tiers.ip),
        )
        request[DECISION] = by_address
        if not overall.allowed:
            raise exceeded("global", overall)
        if not by_address.allowed:
            raise exceeded("ip", by_address)
        return await handler(request)

    async def charge(self, request: aioweb.Request, principal: Principal) -> None:
        """The caller's own tier, once it is known; a 429 if it is used up."""
        if from_worker(request):
            return
        creating = request.method == "POST" and request.path == "/api/v1/invoices"
        tier, rate = (
            ("invoice_create", self._tiers.invoice_create)
            if creating
            else (
                "reads",
                self._tiers.reads,
            )
        )
        decision = await self._limiter.hit(f"{tier}:{principal.actor_id}", rate)
        request[DECISION] = decision
        if not decision.allowed:
            raise exceeded(tier, decision)

    async def _add_headers(self, request: aioweb.Request, response: aioweb.StreamResponse) -> None:
        decision = request.get(DECISION)
        if decision is not None:
            for name, value in limit_headers(decision).items():
                response.headers.setdefault(name, value)
