"""The dashboard's way to the merchant API: the worker calls its own API over loopback.

The dashboard holds no business logic and no privileges of its own. Every page is built from
the same endpoints an integrator calls, with the signed-in user's access token, so what a user
sees and may do in the browser is exactly what their role allows on the API: scopes, tenant
isolation, the owner routing of one invoice, the rate limits and the audit log apply unchanged.
The call goes to the very listener the browser's request arrived on, signed under the internal
secret as the dashboard's (web/edge.py): the API sees the browser's address, not 127.0.0.1,
charges the user's own rate-limit tier and writes the audit log as for any other client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp
import orjson
from aiohttp import web as aioweb
from yarl import URL

from app.runtime.worker_signatures import WorkerSignatures
from web.edge import DASHBOARD, client_address

CALL_TIMEOUT: Final = aiohttp.ClientTimeout(total=30, connect=5)
EXPORT_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60)


@dataclass(frozen=True)
class ApiAnswer:
    status: int
    body: Any  # the parsed JSON, or None for 204

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> dict[str, Any]:
        """The API's error object (web/errors.py's one shape), or a generic one."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return dict(self.body["error"])
        return {"code": "unexpected_answer", "message": f"the API answered {self.status}"}


class ApiUnavailable(Exception):
    """The worker's own API could not be reached (it is shutting down, or overloaded)."""


class LoopbackApi:
    """Calls this worker's API for one browser request, as the signed-in user."""

    def __init__(self, signatures: WorkerSignatures) -> None:
        self._signatures = signatures
        self._client: aiohttp.ClientSession | None = None

    @property
    def _session(self) -> aiohttp.ClientSession:
        # Made on first use, inside the worker's running loop.
        if self._client is None or self._client.closed:
            self._client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=200), auto_decompress=True
            )
        return self._client

    async def close(self, _: object = None) -> None:
        if self._client is not None:
            await self._client.close()

    @staticmethod
    def _base(request: aioweb.Request) -> str:
        # The local address the browser's connection arrived on: this worker's public listener,
        # whatever WEB_BIND is (0.0.0.0 gives the concrete address here).
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        if not sockname:
            raise ApiUnavailable("the connection has no local address")
        host, port = sockname[0], sockname[1]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    def _headers(
        self, request: aioweb.Request, method: str, path_qs: str, body: bytes, token: str | None
    ) -> dict[str, str]:
        headers = self._signatures.headers(
            method, path_qs, body, routed_from=DASHBOARD, client_address=client_address(request)
        )
        headers["Accept"] = "application/json"
        if body:
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request_id = request.headers.get("X-Request-Id")
        if request_id:
            headers["X-Request-Id"] = request_id
        return headers

    @staticmethod
    def path(path: str, query: Mapping[str, object] | None = None) -> str:
        pairs = {key: str(value) for key, value in (query or {}).items() if value not in (None, "")}
        return f"{path}?{urlencode(pairs)}" if pairs else path

    async def call(
        self,
        request: aioweb.Request,
        method: str,
        path_qs: str,
        *,
        token: str | None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> ApiAnswer:
        """``headers`` are sent as well (an ``Idempotency-Key``); the signature's are kept."""
        body = b"" if json is None else orjson.dumps(json)
        sent = {**(headers or {}), **self._headers(request, method, path_qs, body, token)}
        try:
            async with self._session.request(
                method,
                # encoded: sent exactly as signed (yarl would otherwise re-quote "%2C" as ",").
                URL(self._base(request) + path_qs, encoded=True),
                data=body or None,
                headers=sent,
                timeout=CALL_TIMEOUT,
            ) as response:
                raw = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ApiUnavailable(f"{method} {path_qs.split('?')[0]}: {exc!r}") from exc
        if status == 204 or not raw:
            return ApiAnswer(status, None)
        try:
            return ApiAnswer(status, orjson.loads(raw))
        except orjson.JSONDecodeError:
            return ApiAnswer(status, None)

    @asynccontextmanager
    async def stream(
        self, request: aioweb.Request, path_qs: str, *, token: str
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A GET whose body is passed on as it comes (the CSV exports are never held whole)."""
        headers = self._headers(request, "GET", path_qs, b"", token)
        headers["Accept"] = "text/csv"
        try:
            async with self._session.get(
                URL(self._base(request) + path_qs, encoded=True),
                headers=headers,
                timeout=EXPORT_TIMEOUT,
            ) as response:
                yield response
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ApiUnavailable(f"GET {path_qs.split('?')[0]}: {exc!r}") from exc
