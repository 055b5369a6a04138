"""Webhook replays, queued in the background in batches.

``POST …/replay`` counts what it will send, records a ``webhook_replays`` row and answers 202
at once; it used to insert up to 10,000 deliveries one by one inside the request. Here each
worker's ``ReplayQueue`` claims an open replay (a lease, so two workers never work one at the
same time), and queues ``BATCH`` deliveries per transaction together with the cursor: a worker
that dies mid-replay leaves the rest to another, which goes on from the last batch recorded
(a delivery's id is derived from the replay and the event, so nothing is queued twice). Each
batch is then published on ``crypto-checkout.notifications`` like every other delivery, and
the dispatcher is woken. A replay whose endpoint was deleted or disabled meanwhile is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import psycopg2
from aiokafka.errors import KafkaError
from prometheus_client import Counter

from app.adapters.postgres.webhook_store import PostgresWebhookStore
from app.domain.webhooks import Notification, ReplayJob

logger = logging.getLogger(__name__)

BATCH: Final = 500
LEASE_SECONDS: Final = 30.0
POLL_SECONDS: Final = 2.0
RETRY_SECONDS: Final = 5.0

REPLAYED = Counter(
    "checkout_webhook_replay_deliveries_total", "Deliveries queued by webhook replays"
)

# What a worker waits out; anything else is a bug and crashes the worker (runtime/background.py).
_UNREACHABLE: Final = (
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    KafkaError,
    OSError,
    TimeoutError,
)

Publish = Callable[[Sequence[Notification]], Awaitable[None]]


class ReplayQueue:
    def __init__(
        self,
        store: PostgresWebhookStore,
        publish: Publish,
        wake_dispatcher: Callable[[], None],
        *,
        batch: int = BATCH,
    ) -> None:
        self._store = store
        self._publish = publish
        self._wake_dispatcher = wake_dispatcher
        self._batch = batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A replay was asked for: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                job = await self._store.claim_replay(LEASE_SECONDS)
            except psycopg2.Error:
                # As the dispatcher does: PostgreSQL refusing the claim (down, or its schema not
                # migrated yet) is logged and tried again, never the end of the worker.
                logger.exception("webhook replays: cannot claim; retrying in %g s", RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            try:
                if job is not None:
                    await self._work_or_fail(job)
                    continue
            except _UNREACHABLE as exc:
                # PostgreSQL or Kafka unreachable: the lease runs out and this or another
                # worker goes on from the last batch recorded.
                logger.warning("webhook replays: %s; retrying in %g s", exc, RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            # asyncio.timeout, not wait_for: on Python 3.11 a cancellation arriving as the wait
            # ends can be swallowed by wait_for, and the loop then never stops (a worker's
            # shutdown, or a test cancelling it, hangs; seen once in CI).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await self._wake.wait()
            self._wake.clear()

    async def _work_or_fail(self, job: ReplayJob) -> None:
        """A replay that fails for another reason than an unreachable dependency is marked
        failed (with the error, and in the log with its traceback): left queued, it would
        crash every worker that claimed it, one after the other."""
        try:
            await self._work(job)
        except _UNREACHABLE:
            raise
        except Exception as exc:
            logger.exception("webhook replay %s failed", job.replay_id)
            await self._store.fail_replay(job.replay_id, f"{type(exc).__name__}: {exc}")

    async def _work(self, job: ReplayJob) -> None:
        while job.status == "queued":
            endpoint = await self._store.endpoint(job.merchant_id, job.endpoint_id)
            if endpoint is None or not endpoint.enabled:
                await self._store.cancel_replay(job.replay_id)
                logger.info("webhook replay %s cancelled: its endpoint is gone", job.replay_id)
                return
            notifications, job = await self._store.queue_replay_batch(
                job, endpoint, self._batch, LEASE_SECONDS
            )
            if notifications:
                REPLAYED.inc(len(notifications))
                await self._publish(notifications)
                self._wake_dispatcher()
        logger.info("webhook replay %s: %d deliveries queued", job.replay_id, job.queued)
