"""The audit log of HTTP requests: who changed what, from where, with what result.

``AuditTrail.middleware`` (the outermost middleware, so it sees the answer as the client gets it)
appends one entry to the append-only ``audit_log`` table for every state-changing request
(POST, PUT, PATCH, DELETE) made by an authenticated key or user, for every sign-in attempt the
sign-in limits let through (successful or not), and for every successful refresh, logout and
invitation acceptance: actor (key id or user id, and role),
action (method and route), target id, request id, client address, result (the HTTP status).
Views add what only they know (``note_target``, ``note_details``, ``note_actor``).

Not logged: requests refused before anyone was identified (no or an unknown credential, a junk
refresh or invitation token, the global and per-address rate limits, the sign-in limits), so
that a flood of junk cannot turn into a flood of writes; the worker's log has them. A request
forwarded by another worker is logged where it arrived.

Every response carries ``X-Request-Id`` (the client's own, when it sent a sane one), which the
entry records: a merchant quoting it is found at once.

If the entry cannot be written (PostgreSQL down), the request has happened anyway: the response
goes out, the entry is written to the worker's log in full at ERROR, and
``checkout_audit_failures_total`` counts it.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import orjson
from aiohttp import web as aioweb
from prometheus_client import Counter

from app.services.ports import AuditEntry, AuditLog, UserRecord
from web.auth import principal_of
from web.edge import client_address, from_worker

logger = logging.getLogger(__name__)

Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]

REQUEST_ID: Final = aioweb.RequestKey("checkout.request_id", str)
_TARGET: Final = aioweb.RequestKey("checkout.audit_target", str)
_DETAILS: Final = aioweb.RequestKey("checkout.audit_details", dict)
_ACTOR: Final = aioweb.RequestKey("checkout.audit_actor", UserRecord)
_CHANGING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SESSION_PATHS: Final = frozenset(
    {
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/accept-invitation",
    }
)
_SANE_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")

AUDIT_FAILURES = Counter(
    "checkout_audit_failures_total",
    "Audit entries that could not be written to PostgreSQL (each is in the worker's log)",
)


def note_target(request: aioweb.Request, target_id: str) -> None:
    request[_TARGET] = target_id


def note_details(request: aioweb.Request, details: Mapping[str, Any]) -> None:
    request[_DETAILS] = {**request.get(_DETAILS, {}), **details}


def note_actor(request: aioweb.Request, user: UserRecord) -> None:
    """Who signed in (the request carried no credential to say so)."""
    request[_ACTOR] = user


def request_id_of(request: aioweb.Request) -> str:
    return request.get(REQUEST_ID) or "-"


class AuditTrail:
    def __init__(self, log: AuditLog) -> None:
        self._log = log

    def install(self, app: aioweb.Application) -> None:
        # Before the headers go out: streams (WebSocket, SSE) are long sent by the time the
        # middleware sees their response again.
        app.on_response_prepare.append(self._request_id_header)

    async def _request_id_header(
        self, request: aioweb.Request, response: aioweb.StreamResponse
    ) -> None:
        if REQUEST_ID in request:
            response.headers.setdefault("X-Request-Id", request[REQUEST_ID])

    @aioweb.middleware
    async def middleware(self, request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
        given = request.headers.get("X-Request-Id", "")
        request[REQUEST_ID] = (
            given if _SANE_REQUEST_ID.fullmatch(given) else f"req_{secrets.token_hex(8)}"
        )
        response = await handler(request)
        entry = self._entry(request, response.status)
        if entry is not None:
            await self._append(entry)
        return response

    def _entry(self, request: aioweb.Request, status: int) -> AuditEntry | None:
        if request.method not in _CHANGING or from_worker(request):
            return None
        principal = principal_of(request)
        signed_in = request.get(_ACTOR)
        session_call = request.path in _SESSION_PATHS
        if principal is None and not session_call:
            return None  # nobody identified: see the module's docstring
        if session_call and status == 429:
            return None  # the sign-in limits refused it before any check
        if session_call and request.path != "/api/v1/auth/login" and status >= 400:
            return None  # a junk refresh, logout or invitation token: nobody to name
        route = request.match_info.route.resource
        action = f"{request.method} {route.canonical if route is not None else request.path}"
        target = request.get(_TARGET) or next(iter(request.match_info.values()), None)
        common = {
            "action": action,
            "result": str(status),
            "target_id": target,
            "request_id": request[REQUEST_ID],
            "client_address": client_address(request),
            "details": request.get(_DETAILS, {}),
        }
        if principal is not None:
            return AuditEntry(
                actor_kind=principal.kind,
                actor_id=principal.actor_id,
                actor_role=None if principal.role is None else principal.role.value,
                merchant_id=principal.merchant_id,
                **common,
            )
        if signed_in is not None:
            return AuditEntry(
                actor_kind="user",
                actor_id=signed_in.user_id,
                actor_role=signed_in.role.value,
                merchant_id=signed_in.merchant_id,
                **common,
            )
        return AuditEntry(actor_kind="anonymous", **common)

    async def _append(self, entry: AuditEntry) -> None:
        try:
            await self._log.append(entry)
        except Exception:
            AUDIT_FAILURES.inc()
            logger.exception(
                "audit entry not written; here it is in full: %s",
                orjson.dumps(entry, default=str).decode(),
            )
