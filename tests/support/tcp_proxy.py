"""A TCP forwarder in a process of its own, to make a server unreachable for the platform only.

The fault suite puts one between the workers and the Tron simulator: ``freeze()`` stops the
forwarder (SIGSTOP), so the workers' requests to the node hang unanswered as at a node that froze
or a network that drops everything, while the tests still reach the simulator directly (the chain
goes on: customers pay, blocks are produced). ``thaw()`` (SIGCONT) lets everything through again;
what was sent meanwhile is then forwarded. The forwarder knows nothing of HTTP: the workers speak
the node's own API through it.

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
from dataclasses import dataclass
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


@dataclass
class TcpProxy:
    url: str  # the target's URL with the forwarder's address
    process: ManagedProcess

    def freeze(self) -> None:
        """Nothing goes through any more (connections hang; new ones are never answered)."""
        os.kill(self.process.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.process.pid, signal.SIGCONT)


@contextmanager
def tcp_proxy(target_url: str) -> Iterator[TcpProxy]:
    """A forwarder to ``target_url``'s host and port; yields it with the URL to use instead."""
    target = urlsplit(target_url)
    assert target.hostname is not None and target.port is not None, target_url
    port = free_port()
    process = ManagedProcess(
        "tcp-proxy",
        [
            sys.executable,
            "-m",
            "tests.support.tcp_proxy",
            "--port",
            str(port),
            "--to",
            f"{target.hostname}:{target.port}",
        ],
        {},
        REPO_ROOT,
    )
    try:
        eventually(lambda: port_open(port), timeout=30, what=f"the TCP proxy on {port}")
        yield TcpProxy(target._replace(netloc=f"127.0.0.1:{port}").geturl(), process)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.process.pid, signal.SIGCONT)  # a stopped process ignores SIGTERM
        process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--to", required=True, help="HOST:PORT")
    args = parser.parse_args()
    host, _, target_port = args.to.rpartition(":")
    asyncio.run(_serve(args.port, host, int(target_port)))


if __name__ == "__main__":
    main()
