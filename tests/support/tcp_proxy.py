"""A TCP forwarder in a process of its own, to make a server unreachable for the platform only.

The fault suite puts one between the workers and the Tron simulator: ``freeze()`` stops the
forwarder (SIGSTOP), so the workers' requests to the node hang unanswered as at a node that froze
or a network that drops everything, while the tests still reach the simulator directly (the chain
goes on: customers pay, blocks are produced). ``thaw()`` (SIGCONT) lets everything through again;
what was sent meanwhile is then forwarded. ``cut()`` kills it instead (connections closed, new
ones refused, as at a server that stopped) and ``restore()`` starts it again on the same port:
a server unreachable for one platform only (tests/integration/pipeline/test_redis_outage.py).
The forwarder knows nothing of HTTP or Redis: each side speaks its own protocol through it.

``python -m tests.support.tcp_proxy --port PORT --to HOST:PORT``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from tests.support.processes import REPO_ROOT, ManagedProcess, eventually, free_port, port_open


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.close()


async def _serve(port: int, host: str, target_port: int) -> None:
    async def forward(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(host, target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))

    server = await asyncio.start_server(forward, "127.0.0.1", port, reuse_address=True)
    async with server:
        await server.serve_forever()


class TcpProxy:
    """The forwarder: ``url`` is the target's URL with the forwarder's address."""

    def __init__(self, target_url: str) -> None:
        target = urlsplit(target_url)
        assert target.hostname is not None and target.port is not None, target_url
        self._to = f"{target.hostname}:{target.port}"
        self.port = free_port()
        self.url = target._replace(netloc=f"127.0.0.1:{self.port}").geturl()
        self.process = self._start()

    def _start(self) -> ManagedProcess:
        argv = [sys.executable, "-m", "tests.support.tcp_proxy", "--port", str(self.port)]
        process = ManagedProcess("tcp-proxy", [*argv, "--to", self._to], {}, REPO_ROOT)
        eventually(lambda: port_open(self.port), timeout=30, what=f"the TCP proxy on {self.port}")
        return process

    def freeze(self) -> None:
        """Nothing goes through any more (connections hang; new ones are never answered)."""
        os.kill(self.process.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.process.pid, signal.SIGCONT)

    def cut(self) -> None:
        """Gone, as a server that stopped: every connection is closed, new ones are refused."""
        self.process.kill()

    def restore(self) -> None:
        """Back after ``cut``, on the same address."""
        self.process = self._start()

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.process.pid, signal.SIGCONT)  # a stopped process ignores SIGTERM
        self.process.stop()


@contextmanager
def tcp_proxy(target_url: str) -> Iterator[TcpProxy]:
    """A forwarder to ``target_url``'s host and port; yields it with the URL to use instead."""
    proxy = TcpProxy(target_url)
    try:
        yield proxy
    finally:
        proxy.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--to", required=True, help="HOST:PORT")
    args = parser.parse_args()
    host, _, target_port = args.to.rpartition(":")
    asyncio.run(_serve(args.port, host, int(target_port)))


if __name__ == "__main__":
    main()
