"""A merchant's webhook receiver for tests: a real aiohttp server on loopback, in its own thread.

It records every request exactly as received (headers, raw body, time) and answers with the
status the test sets. ``down()`` closes the listening socket, so attempts meet a refused
connection as they would at a crashed server; ``up()`` listens again on the same port.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.support.processes import eventually, free_port


@dataclass(frozen=True)
class ReceivedWebhook:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


class WebhookReceiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.status = 200
        self.received: list[ReceivedWebhook] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._down = False

    def url(self, path: str = "/hooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self._thread.start()
        self._call(self._start())

    def stop(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def down(self) -> None:
        self._down = True  # kept-alive connections are cut too, not only new ones refused
        self._call(self._close_site())

    def up(self) -> None:
        self._call(self._open_site())
        self._down = False

    def requests(self, path: str | None = None) -> list[ReceivedWebhook]:
        with self._lock:
            return [item for item in self.received if path is None or item.path == path]

    def wait_for(
        self, predicate: Any, what: str, timeout: float = 60, path: str | None = None
    ) -> list[ReceivedWebhook]:
        def probe() -> list[ReceivedWebhook] | None:
            seen = self.requests(path)
            return seen if predicate(seen) else None

        result: list[ReceivedWebhook] = eventually(probe, timeout=timeout, what=what)
        return result

    # --- inside the receiver's loop ---------------------------------------------------------

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _handle(self, request: web.Request) -> web.Response:
        if self._down and request.transport is not None:
            request.transport.close()  # as a crashed server: no answer at all
            raise web.HTTPServiceUnavailable()
        body = await request.read()
        with self._lock:
            self.received.append(
                ReceivedWebhook(request.path, dict(request.headers), body, time.time())
            )
        return web.Response(status=self.status, text="ok" if self.status < 300 else "nope")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await self._open_site()

    async def _open_site(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()

    async def _close_site(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def _stop(self) -> None:
        await self._close_site()
        if self._runner is not None:
            await self._runner.cleanup()


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
