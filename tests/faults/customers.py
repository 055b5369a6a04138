"""The paying customers' live status, as the payment page follows it: one WebSocket per invoice.

Each customer opens ``/api/v1/public/invoice/{id}/ws`` on one of the workers (not the one that
created the invoice, as in bench/bench_load.py: any worker serves any customer through Redis
pub/sub) and reads its views until one is settled (app/services/live_view.py ``is_settled``: a
final status, no payment still moving) — what the customer sees as the end; then it closes the
page. When the socket is refused (503 while Redis is away), dropped, or closed by the server
before that, the customer connects again after 0.5 s, 1 s, 2 s … at most 5 s — as the payment
page reconnects (web/templates/pay.html; the page would fall back to SSE and polling after two
failed opens, this customer keeps to the WebSocket, which is what is under test).

All customers run on one event loop in a thread of their own. ``results()`` says per invoice the
statuses seen, how many connections it took, and the status it ended at (None: it never saw a
settled view).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from app.services.live_view import is_settled

MAX_BACKOFF = 5.0


@dataclass
class Customer:
    invoice_id: str
    worker_url: str
    statuses: list[str] = field(default_factory=list)  # every view's status, in arrival order
    connections: int = 0  # WebSockets opened
    refusals: list[str] = field(default_factory=list)  # why an open or a stream failed
    final: str | None = None  # the settled view's status
    ended_at: float | None = None  # monotonic: it saw that view


class Customers:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="ws")
        self._session: aiohttp.ClientSession | None = None
        self._following: list[concurrent.futures.Future[None]] = []
        self._lock = threading.Lock()
        self.customers: dict[str, Customer] = {}

    def start(self) -> None:
        self._thread.start()
        self._session = asyncio.run_coroutine_threadsafe(self._open(), self._loop).result(10)

    async def _open(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))

    def stop(self) -> None:
        with self._lock:
            following = list(self._following)
        for future in following:
            future.cancel()
        concurrent.futures.wait(following, timeout=30)
        if self._session is not None:
            asyncio.run_coroutine_threadsafe(self._session.close(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def watch(self, invoice_id: str, worker_url: str) -> None:
        """A customer opens the invoice's payment page on ``worker_url`` (thread-safe)."""
        customer = Customer(invoice_id, worker_url)
        with self._lock:
            self.customers[invoice_id] = customer
        future = asyncio.run_coroutine_threadsafe(self._follow(customer), self._loop)
        with self._lock:
            self._following.append(future)

    def results(self) -> list[Customer]:
        with self._lock:
            return list(self.customers.values())

    def wait_all_ended(self, timeout: float) -> list[Customer]:
        """Those that have not seen a settled view after ``timeout`` s."""
        until = time.monotonic() + timeout
        while True:
            waiting = [c for c in self.results() if c.final is None]
            if not waiting or time.monotonic() >= until:
                return waiting
            time.sleep(0.5)

    async def _follow(self, customer: Customer) -> None:
        assert self._session is not None
        url = f"{customer.worker_url}/api/v1/public/invoice/{customer.invoice_id}/ws"
        backoff = 0.5
        while customer.final is None:
            try:
                async with self._session.ws_connect(url, heartbeat=None) as ws:
                    customer.connections += 1
                    backoff = 0.5
                    async for message in ws:
                        if message.type != aiohttp.WSMsgType.TEXT:
                            break
                        view: dict[str, Any] = json.loads(message.data)
                        customer.statuses.append(str(view.get("status")))
                        if is_settled(view):
                            customer.final = str(view["status"])
                            customer.ended_at = time.monotonic()
                            return  # the page shows its final status: the customer leaves
                    customer.refusals.append(f"closed {ws.close_code}")
            except aiohttp.WSServerHandshakeError as exc:
                customer.refusals.append(f"HTTP {exc.status}")
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                customer.refusals.append(type(exc).__name__)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)


@contextmanager
def websocket_customers() -> Iterator[Customers]:
    customers = Customers()
    customers.start()
    try:
        yield customers
    finally:
        with contextlib.suppress(Exception):  # teardown only
            customers.stop()
