"""A steady load for the fault suite: invoices created and paid at a modest rate, blocks mined.

Two background threads, as the benchmarks' load (bench/bench_load.py) at a fault-suite pace:
the customer side creates an invoice every 1/``rate`` s over the HTTP API (on whichever worker
answers: the other one may be the one killed) and sends its exact amount to its deposit address;
the chain side mines a block every ``block_interval`` s, as Tron does, carrying every transfer
sent meanwhile (straight to the simulator, which stands for the network: the platform's own road
to its node may be what is broken). Amounts stay under 100 USDT, so one confirmation pays an
invoice: its payment is decided in the very block that carries it. A third thread asks the live
workers, every half second, for the invoices not yet paid: ``orders`` records, per invoice, when
its block was mined and when the platform first said it was paid, and the transfer that paid it
and its block's height (for a reorg at the tip: ``chain_held``, ``pay_again``).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

import httpx

from tests.support.platform import Platform


@dataclass
class Order:
    invoice_id: str
    amount: str
    sent_at: float  # monotonic: the transfer went to the node's pool
    mined_at: float | None = None  # the block carrying it was mined
    paid_seen_at: float | None = None  # the platform first answered `paid`
    txid: str = ""  # the transfer paying it (the last one, when the customer paid again)
    deposit_address: str = ""
    block: int | None = None  # the height of the block that carried the transfer when mined


class SteadyLoad:
    def __init__(
        self,
        platform: Platform,
        *,
        rate: float = 2.0,
        block_interval: float = 3.0,
        on_created: Callable[[str, int], None] | None = None,
    ):
        """``on_created(invoice_id, worker_index)`` is called for each invoice once it is
        created (a customer opens its payment page)."""
        self._platform = platform
        self._interval = 1.0 / rate
        self._block_interval = block_interval
        self._random = random.Random(18)
        self._lock = threading.RLock()
        self._creating = threading.Event()
        self._mining = threading.Event()
        self._threads: list[threading.Thread] = []
        self._urls = itertools.cycle(range(len(platform.worker_urls)))
        self.orders: list[Order] = []
        self.blocks_mined = 0
        self.errors: list[str] = []  # requests no worker answered
        self._on_created = on_created

    def start(self) -> None:
        self._creating.set()
        self._mining.set()
        for target in (self._create_and_pay, self._mine, self._watch):
            thread = threading.Thread(target=target, daemon=True, name=target.__name__)
            thread.start()
            self._threads.append(thread)

    def stop_creating(self) -> None:
        self._creating.clear()

    @contextmanager
    def chain_held(self) -> Iterator[None]:
        """Meanwhile no transfer is sent and no block mined (the orders stand still too): the
        chain's tip can be reorganised (tests/faults/test_reorg.py)."""
        with self._lock:
            yield

    def pay_again(self, order: Order) -> str:
        """``order``'s customer sends its amount once more (a reorg took the first transfer
        away): it is awaited again, from this transfer. The new transfer's id."""
        with self._lock:
            order.txid = self._platform.sim.pay(order.deposit_address, order.amount)
            order.sent_at = time.monotonic()
            order.mined_at = order.block = order.paid_seen_at = None
            return order.txid

    def stop(self) -> None:
        self._creating.clear()
        self._mining.clear()
        for thread in self._threads:
            thread.join(timeout=30)

    def _create_and_pay(self) -> None:
        next_at = time.monotonic()
        while self._creating.is_set():
            amount = str(Decimal(self._random.randint(100, 9_999)) / 100)  # 1.00–99.99 USDT
            created = self._create(amount)
            if created is not None:
                invoice, worker = created
                if self._on_created is not None:
                    self._on_created(invoice["id"], worker)
                self._pay(invoice, amount)
            # Customers come at their pace: time lost to a refused or slow request is not made
            # up with a burst afterwards.
            next_at = max(next_at + self._interval, time.monotonic())
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _pay(self, invoice: dict[str, str], amount: str) -> None:
        # Sent and recorded together, never across a block: its block is the next one.
        address = invoice["deposit_address"]
        with self._lock:
            txid = self._platform.sim.pay(address, amount)
            self.orders.append(
                Order(invoice["id"], amount, time.monotonic(), txid=txid, deposit_address=address)
            )

    def _create(self, amount: str) -> tuple[dict[str, str], int] | None:
        """The invoice and the worker that created it: the next worker that answers (a killed one
        does not). One Idempotency-Key for both tries, as a merchant retrying would send."""
        key = f"faults-{uuid.uuid4().hex}"
        for _ in range(len(self._platform.worker_urls)):
            worker = next(self._urls)
            url = self._platform.worker_urls[worker]
            try:
                response = httpx.post(
                    f"{url}/api/v1/invoices",
                    json={"amount": amount},
                    headers={**self._platform.headers(), "Idempotency-Key": key},
                    timeout=10,
                )
            except httpx.HTTPError as exc:
                self.errors.append(f"{url}: {exc!r}")
                continue
            if response.status_code == 201:
                return dict(response.json()), worker
            self.errors.append(f"{url}: {response.status_code} {response.text[:200]}")
        return None

    def _mine(self) -> None:
        while self._mining.is_set():
            time.sleep(self._block_interval)
            with self._lock:
                head = int(self._platform.sim.mine(1)["head"])
                mined_at = time.monotonic()
                self.blocks_mined += 1
                for order in self.orders:
                    if order.mined_at is None:
                        order.mined_at, order.block = mined_at, head

    def _watch(self) -> None:
        """Ask for the invoices not yet seen paid, every half second, on any live worker."""
        while self._mining.is_set():
            with self._lock:
                waiting = [order for order in self.orders if order.paid_seen_at is None]
            for order in waiting:
                if self._status(order.invoice_id) == "paid":
                    order.paid_seen_at = time.monotonic()
            time.sleep(0.5)

    def _status(self, invoice_id: str) -> str | None:
        for url in self._platform.worker_urls:
            try:
                answer = httpx.get(
                    f"{url}/api/v1/invoices/{invoice_id}",
                    headers=self._platform.headers(),
                    timeout=5,
                )
            except httpx.HTTPError:
                continue
            if answer.status_code == 200:
                return str(answer.json()["status"])
        return None

    def wait_all_paid(self, timeout: float) -> list[Order]:
        """Once creation stopped: wait (blocks keep coming) until every order was seen paid;
        the ones still unpaid after ``timeout`` s."""
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            with self._lock:
                unpaid = [order for order in self.orders if order.paid_seen_at is None]
            if not unpaid:
                return []
            time.sleep(0.5)
        return unpaid

    def wait_recovered(self, began: float, ended: float, timeout: float) -> list[Order]:
        """While the load runs, after a fault from ``began`` to ``ended`` (monotonic): wait until
        a payment mined after ``began`` was seen paid, every payment mined until then (or until
        ``ended``, if later) too, and one mined after ``ended``; after ``timeout`` s, the orders
        still awaited."""
        until = time.monotonic() + timeout
        while True:
            with self._lock:
                mined = [o for o in self.orders if o.mined_at is not None]
            since = [o.paid_seen_at for o in mined if o.mined_at > began and o.paid_seen_at]
            horizon = max(min(since), ended) if since else ended
            awaited = [o for o in mined if o.mined_at <= horizon and o.paid_seen_at is None]
            later = [o for o in mined if o.mined_at > ended]
            if since and not awaited and any(o.paid_seen_at is not None for o in later):
                return []
            if time.monotonic() >= until:
                return awaited or later
            time.sleep(0.5)
