"""The worker's two HTTP listeners: the public one Faust runs, and the operators' one.

**Public** (``WEB_BIND:WEB_PORT``): Faust's aiohttp server. Faust builds its ``AppRunner`` with
aiohttp's defaults, where a connection may take an hour (``keepalive_timeout=3630``) to send its
headers: a few thousand slow clients would hold a worker's sockets. ``harden_public_server``
gives it a ``keepalive_timeout`` that is also the header read timeout (aiohttp arms it when the
connection opens, and only a complete request disarms it), and bounds request bodies.

**Internal** (``INTERNAL_BIND:INTERNAL_PORT``, loopback by default): ``/metrics`` and the
detailed ``/readyz``, which name dependencies, partitions and hosts an outsider has no business
seeing. It is a second aiohttp server in the same process, started and stopped with the worker.
"""

from __future__ import annotations

import logging

import faust
from aiohttp import web as aioweb

logger = logging.getLogger(__name__)

# A client has this long to send a request's headers, and an idle keep-alive connection is
# closed after it. Browsers and load balancers reconnect without a sound.
HEADER_READ_TIMEOUT = 15.0


def harden_public_server(
    app: faust.App, *, max_body_bytes: int, keepalive_timeout: float = HEADER_READ_TIMEOUT
) -> aioweb.Application:
    """Faust's aiohttp application, its runner rebuilt with our timeouts; call before start."""
    web = app.web
    web_app: aioweb.Application = web.web_app  # type: ignore[attr-defined]
    # Application(client_max_size=…) is what Faust would pass from web_application_options;
    # the attribute is read per request, so setting it on the built application is the same.
    web_app._client_max_size = max_body_bytes
    web._runner = aioweb.AppRunner(  # type: ignore[attr-defined]
        web_app, access_log=None, keepalive_timeout=keepalive_timeout
    )
    return web_app


class InternalListener:
    """An aiohttp server for the operators' routes, as ``start``/``stop`` for ``Background``."""

    def __init__(self, web_app: aioweb.Application, *, host: str, port: int) -> None:
        self._web_app = web_app
        self._host = host
        self._port = port
        self._runner: aioweb.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        runner = aioweb.AppRunner(
            self._web_app, access_log=None, keepalive_timeout=HEADER_READ_TIMEOUT
        )
        await runner.setup()
        try:
            await aioweb.TCPSite(runner, self._host, self._port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        logger.info("operators' listener (/metrics, /readyz) on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
