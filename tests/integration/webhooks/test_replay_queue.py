"""Webhook replays queued in the background, against the real PostgreSQL.

``ReplayQueue`` (app/adapters/webhooks/replays.py) and the replay half of
``PostgresWebhookStore`` are driven directly, without workers or Kafka: ``publish`` and the
dispatcher's wake-up are recorded instead. Each test has its own merchant (so its own events in
event_store, which is append-only and never cleaned) and its own ``app_id`` (so a claim sees only
the replays of its own endpoints, whatever else the shared database holds).
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiopg
import pytest
from psycopg2.extras import Json

from app.adapters.postgres.webhook_store import PostgresWebhookStore
from app.adapters.webhooks.replays import ReplayQueue
from app.adapters.webhooks.secrets import SecretKeyring, generate_key
from app.domain.webhooks import (
    EndpointSettings,
    Notification,
    ReplayJob,
    WebhookEndpoint,
    event_type_matches,
    new_replay_id,
    replay_delivery_id,
)
from app.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

KEYRING = SecretKeyring.parse(f"replay-test:{generate_key()}")
BATCH = 3
# Far from any real event; each test's merchant is new, so its window holds only its events.
BASE = datetime(2031, 3, 14, 9, 26, 53, tzinfo=UTC)
START = BASE
END = BASE + timedelta(hours=1)


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    event_type: str
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int
    occurred_at: datetime

    @property
    def order(self) -> tuple[datetime, str, int]:
        """event_store's replay order (the database collates in C, as Python compares)."""
        return (self.occurred_at, self.aggregate_id, self.aggregate_version)


@dataclass
class Recorder:
    """What ReplayQueue hands to Kafka and to the dispatcher."""

    published: list[list[Notification]] = field(default_factory=list)
    wakes: int = 0

    async def publish(self, notifications: Sequence[Notification]) -> None:
        self.published.append(list(notifications))

    def wake(self) -> None:
        self.wakes += 1


@pytest.fixture
async def pool() -> AsyncIterator[Any]:
    pool = await aiopg.create_pool(Settings.from_env().database_url, minsize=1, maxsize=10)
    try:
        yield pool
    finally:
        pool.close()
        await pool.wait_closed()


@pytest.fixture
def store(pool: Any) -> PostgresWebhookStore:
    return PostgresWebhookStore(pool, KEYRING, f"replay-test-{secrets.token_hex(6)}")


@pytest.fixture
async def merchant_id(pool: Any) -> str:
    merchant_id = f"mer_rq{secrets.token_hex(10)}"
    await execute(
        pool,
        "INSERT INTO merchants (merchant_id, name) VALUES (%s, %s)",
        (merchant_id, f"Replay shop {merchant_id}"),
    )
    return merchant_id


async def execute(pool: Any, sql: str, values: Sequence[Any] = ()) -> None:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(sql, values)


async def fetchall(pool: Any, sql: str, values: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(sql, values)
        return list(await cur.fetchall())


_AGGREGATES = {"Invoice": "invoice", "Payment": "payment", "Settlement": "settlement"}


async def record_event(
    pool: Any,
    merchant_id: str,
    event_type: str,
    aggregate_id: str,
    aggregate_version: int,
    occurred_at: datetime,
) -> StoredEvent:
    """One domain event in event_store, its payload the envelope as the projection stores it."""
    aggregate_type = next(
        kind for prefix, kind in _AGGREGATES.items() if event_type.startswith(prefix)
    )
    event = StoredEvent(
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=aggregate_version,
        occurred_at=occurred_at,
    )
    causation_id = f"test:{secrets.token_hex(6)}"
    payload = {
        "event_id": event.event_id,
        "event_type": event_type,
        "schema_version": 1,
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "aggregate_version": aggregate_version,
        "merchant_id": merchant_id,
        "occurred_at": occurred_at.isoformat().replace("+00:00", "Z"),
        "causation_id": causation_id,
        "data": {},
    }
    await execute(
        pool,
        "INSERT INTO event_store (event_id, event_type, schema_version, aggregate_type,"
        " aggregate_id, aggregate_version, merchant_id, occurred_at, causation_id, payload)"
        " VALUES (%s, %s, 1, %s, %s, %s, %s, %s, %s, %s)",
        (event.event_id, event_type, aggregate_type, aggregate_id, aggregate_version,
         merchant_id, occurred_at, causation_id, Json(payload)),
    )  # fmt: skip
    return event


async def seven_events(pool: Any, merchant_id: str) -> list[StoredEvent]:
    """Seven events of mixed types in [START, END), recorded out of order, in replay order.

    Three share one instant (ordered by aggregate id), one is exactly at START; around them are
    events the replay must not see: one just before START, one exactly at END (the range is
    half-open) and one of another merchant inside the range.
    """
    tag = secrets.token_hex(5)
    inv_a, inv_b, pay_a, stl_a = f"inv_{tag}a", f"inv_{tag}b", f"pay_{tag}a", f"stl_{tag}a"
    same = START + timedelta(minutes=10, microseconds=123)
    plan = [  # recorded in this order: neither by time nor by aggregate id
        ("InvoicePaid", inv_a, 3, START + timedelta(minutes=30)),
        ("InvoiceCreated", inv_b, 1, same),
        ("PaymentDetected", pay_a, 1, same),
        ("InvoiceCreated", inv_a, 1, START),
        ("SettlementCreated", stl_a, 1, START + timedelta(minutes=45)),
        ("InvoicePaymentDetected", inv_a, 2, same),
        ("PaymentConfirmed", pay_a, 2, START + timedelta(minutes=20)),
    ]
    events = [await record_event(pool, merchant_id, *step) for step in plan]
    await record_event(
        pool, merchant_id, "InvoiceCreated", f"inv_{tag}c", 1, START - timedelta(microseconds=1)
    )
    await record_event(pool, merchant_id, "InvoiceCreated", f"inv_{tag}d", 1, END)
    await record_event(pool, f"mer_other{tag}", "InvoiceCreated", f"inv_{tag}e", 1, same)
    return sorted(events, key=lambda event: event.order)


async def new_replay(
    store: PostgresWebhookStore, merchant_id: str, endpoint: WebhookEndpoint
) -> ReplayJob:
    """A replay of [START, END) as the API asks for one: its expected count from event_counts."""
    counts = await store.event_counts(merchant_id, START, END)
    return await store.add_replay(
        ReplayJob(
            replay_id=new_replay_id(),
            endpoint_id=endpoint.endpoint_id,
            merchant_id=merchant_id,
            start=START,
            end=END,
            expected=sum(n for kind, n in counts.items() if endpoint.wants(kind)),
        )
    )


async def replay_deliveries(pool: Any, endpoint_id: str) -> list[tuple[Any, ...]]:
    """(delivery_id, event_id, event_type, origin, merchant_id, event) of the endpoint, by seq."""
    return await fetchall(
        pool,
        "SELECT delivery_id, event_id::text, event_type, origin, merchant_id, event"
        " FROM webhook_deliveries WHERE endpoint_id = %s ORDER BY seq",
        (endpoint_id,),
    )


async def replay_row(pool: Any, replay_id: str) -> tuple[Any, ...]:
    rows = await fetchall(
        pool,
        "SELECT status, queued, expected, leased_until, completed_at, after_occurred_at,"
        " after_aggregate_id, after_aggregate_version FROM webhook_replays WHERE replay_id = %s",
        (replay_id,),
    )
    assert len(rows) == 1
    return rows[0]


async def wait_status(
    store: PostgresWebhookStore, job: ReplayJob, status: str, worker: asyncio.Task[None]
) -> ReplayJob:
    async def poll() -> ReplayJob:
        while True:
            if worker.done():  # the worker crashed: show why rather than time out
                worker.result()
                pytest.fail("the replay worker stopped")
            current = await store.replay_job(job.merchant_id, job.replay_id)
            assert current is not None
            if current.status == status:
                return current
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), timeout=15)


# --- a whole replay ---------------------------------------------------------------------------


async def test_a_replay_queues_the_wanted_events_once_each_in_order_in_batches(
    pool: Any, store: PostgresWebhookStore, merchant_id: str
) -> None:
    events = await seven_events(pool, merchant_id)
    assert len({event.event_type for event in events}) >= 5
    endpoint, _ = await store.create_endpoint(
        merchant_id, EndpointSettings(url="https://example.com/hook", event_types=("Invoice*",))
    )
    wanted = [event for event in events if event_type_matches(("Invoice*",), event.event_type)]
    assert 0 < len(wanted) < len(events)

    counts = await store.event_counts(merchant_id, START, END)
    assert sum(counts.values()) == len(events)
    job = await new_replay(store, merchant_id, endpoint)
    assert (job.status, job.queued, job.expected) == ("queued", 0, len(wanted))

    recorder = Recorder()
    queue = ReplayQueue(store, recorder.publish, recorder.wake, batch=BATCH)
    worker = asyncio.create_task(queue.run())
    try:
        queue.wake()
        done = await wait_status(store, job, "done", worker)
    finally:
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker

    assert done.queued == done.expected == len(wanted)
    assert done.completed_at is not None

    rows = await replay_deliveries(pool, endpoint.endpoint_id)
    assert [row[1] for row in rows] == [event.event_id for event in wanted]  # once each, in order
    assert [row[0] for row in rows] == [
        replay_delivery_id(job.replay_id, event.event_id) for event in wanted
    ]
    assert {(row[3], row[4]) for row in rows} == {("replay", merchant_id)}
    assert [row[2] for row in rows] == [event.event_type for event in wanted]
    assert all(row[5]["event_id"] == row[1] for row in rows)  # the stored envelope itself

    # One publish per batch of BATCH events read that held a wanted one, in the same order.
    expected_batches = [
        [event.event_id for event in events[i : i + BATCH] if event in wanted]
        for i in range(0, len(events), BATCH)
    ]
    expected_batches = [batch for batch in expected_batches if batch]
    assert len(expected_batches) > 1
    assert [[n.event["event_id"] for n in batch] for batch in recorder.published] == (
        expected_batches
    )
    published = [n for batch in recorder.published for n in batch]
    assert {(n.origin, n.endpoint_id, n.merchant_id) for n in published} == {
        ("replay", endpoint.endpoint_id, merchant_id)
    }
    assert [n.delivery_id for n in published] == [row[0] for row in rows]
    assert recorder.wakes == len(expected_batches)

    # The cursor rests on the last event of the range.
    row = await replay_row(pool, job.replay_id)
    assert row[5:] == events[-1].order
    # A finished replay is not claimed again.
    assert await store.claim_replay(30) is None


async def test_work_after_claim_finishes_the_replay_in_batches(
    pool: Any, store: PostgresWebhookStore, merchant_id: str
) -> None:
    events = await seven_events(pool, merchant_id)
    endpoint, _ = await store.create_endpoint(
        merchant_id, EndpointSettings(url="https://example.com/hook", event_types=("*",))
    )
    job = await new_replay(store, merchant_id, endpoint)
    assert job.expected == len(events)

    claimed = await store.claim_replay(30)
    assert claimed is not None and claimed.replay_id == job.replay_id
    recorder = Recorder()
    await ReplayQueue(store, recorder.publish, recorder.wake, batch=BATCH)._work(claimed)

    final = await store.replay_job(merchant_id, job.replay_id)
    assert final is not None
    assert (final.status, final.queued) == ("done", len(events))
    assert [len(batch) for batch in recorder.published] == [3, 3, 1]
    assert recorder.wakes == 3
    rows = await replay_deliveries(pool, endpoint.endpoint_id)
    assert [row[1] for row in rows] == [event.event_id for event in events]


async def test_a_range_that_fills_its_last_batch_exactly_ends_with_an_empty_one(
    pool: Any, store: PostgresWebhookStore, merchant_id: str
) -> None:
    events = (await seven_events(pool, merchant_id))[:6]  # the 7th is the latest: move END
    endpoint, _ = await store.create_endpoint(
        merchant_id, EndpointSettings(url="https://example.com/hook")
    )
    end = events[-1].occurred_at + timedelta(microseconds=1)
    counts = await store.event_counts(merchant_id, START, end)
    job = await store.add_replay(
        ReplayJob(
            replay_id=new_replay_id(),
            endpoint_id=endpoint.endpoint_id,
            merchant_id=merchant_id,
            start=START,
            end=end,
            expected=sum(counts.values()),
        )
    )
    assert job.expected == 6
    claimed = await store.claim_replay(30)
    assert claimed is not None
    recorder = Recorder()
    await ReplayQueue(store, recorder.publish, recorder.wake, batch=BATCH)._work(claimed)

    final = await store.replay_job(merchant_id, job.replay_id)
    assert final is not None and (final.status, final.queued) == ("done", 6)
    assert [len(batch) for batch in recorder.published] == [3, 3]  # the empty one not published
    assert recorder.wakes == 2
    rows = await replay_deliveries(pool, endpoint.endpoint_id)
    assert [row[1] for row in rows] == [event.event_id for event in events]


# --- a worker that dies mid-replay ------------------------------------------------------------


async def test_a_replay_resumed_after_a_crash_queues_nothing_twice(
    pool: Any, store: PostgresWebhookStore, merchant_id: str
) -> None:
    events = await seven_events(pool, merchant_id)
    endpoint, _ = await store.create_endpoint(
        merchant_id, EndpointSettings(url="https://example.com/hook", event_types=("*",))
    )
    job = await new_replay(store, merchant_id, endpoint)
    lease = 0.1

    # Worker A claims and queues one batch, then dies.
    first = await store.claim_replay(lease)
    assert first is not None and first.replay_id == job.replay_id
    sent, after_first = await store.queue_replay_batch(first, endpoint, BATCH, lease)
    assert [n.event["event_id"] for n in sent] == [e.event_id for e in events[:BATCH]]
    assert (after_first.status, after_first.queued) == ("queued", BATCH)
    assert await store.claim_replay(lease) is None  # the batch renewed A's lease

    await asyncio.sleep(lease * 3)

    # Worker B takes the replay over once A's lease ran out, and goes on from A's cursor.
    second = await store.claim_replay(30)
    assert second is not None and second.replay_id == job.replay_id
    assert second.queued == BATCH
    sent, after_second = await store.queue_replay_batch(second, endpoint, BATCH, 30)
    assert [n.event["event_id"] for n in sent] == [e.event_id for e in events[BATCH : 2 * BATCH]]
    assert after_second.queued == 2 * BATCH

    # A comes back from the dead with its stale job and runs a batch: it goes on from the
    # cursor recorded, not from where it had stopped.
    sent, _ = await store.queue_replay_batch(first, endpoint, BATCH, lease)
    assert [n.event["event_id"] for n in sent] == [e.event_id for e in events[2 * BATCH :]]

    final = await store.replay_job(merchant_id, job.replay_id)
    assert final is not None
    assert (final.status, final.queued, final.expected) == ("done", len(events), len(events))
    rows = await replay_deliveries(pool, endpoint.endpoint_id)
    assert [row[1] for row in rows] == [event.event_id for event in events]
    assert len({row[0] for row in rows}) == len(events)


async def test_batches_queued_again_from_a_lost_cursor_are_not_duplicated(
    pool: Any, store: PostgresWebhookStore, merchant_id: str
) -> None:
    """Deliveries written but the cursor not (as a worker that died between the two would leave
    it): the deterministic delivery ids keep the batch queued again from being queued twice."""
    events = await seven_events(pool, merchant_id)
    endpoint, _ = await store.create_endpoint(
        merchant_id, EndpointSettings(url="https://example.com/hook", event_types=("*",))
    )
    job = await new_replay(store, merchant_id, endpoint)
    claimed = await store.claim_replay(0.1)
    assert claimed is not None
    sent, job_after = await store.queue_replay_batch(claimed, endpoint, BATCH, 0.1)
    assert len(sent) == BATCH and job_after.queued == BATCH

    # The cursor is lost; the deliveries and the count stay.
    await execute(
        pool,
        "UPDATE webhook_replays SET after_occurred_at = NULL, after_aggregate_id = NULL,"
        " after_aggregate_version = NULL WHERE replay_id = %s",
        (job.replay_id,),
    )
    await asyncio.sleep(0.3)
    resumed = await store.claim_replay(30)
    assert resumed is not None and resumed.replay_id == job.replay_id

    recorder = Recorder()
    await ReplayQueue(store, recorder.publish, recorder.wake, batch=BATCH)._work(resumed)

    final = await store.replay_job(merchant_id, job.replay_id)
    assert final is not None
    # queued counts deliveries written, so the batch written twice counts once.
    assert (final.status, final.queued) == ("done", len(events))
    rows = await replay_deliveries(pool, endpoint.endpoint_id)
    assert [row[1] for row in rows] == [event.event_id for event in events]
    # The first batch was published again (the notifications topic deduplicates by id).
    assert [n.event["event_id"] for n in recorder.published[0]] == [
        e.event_id for e in events[:BATCH]
    ]


# --- two workers ------------------------------------------------------------------------------


async def test_two_claims_at_once_hand_an_open_replay_to_only_one(
    pool: Any, store: PostgresWebhookStore, merchant_id: str
) -> None:
    await seven_events(pool, merchant_id)
    endpoint, _ = await store.create_endpoint(
        merchant_id, EndpointSettings(url="https://example.com/hook")
    )
    job = await new_replay(store, merchant_id, endpoint)
    # Another worker of the same platform: its own store object on the same database.
    other = PostgresWebhookStore(pool, KEYRING, store._app_id)

    claims = await asyncio.gather(store.claim_replay(30), other.claim_replay(30))

    won = [claim for claim in claims if claim is not None]
    assert len(won) == 1, claims
    assert won[0].replay_id == job.replay_id
    row = await replay_row(pool, job.replay_id)
    assert row[3] is not None and row[3] > datetime.now(UTC) + timedelta(seconds=20)
    assert await store.claim_replay(30) is None  # still leased


async def test_many_claims_at_once_hand_each_replay_to_one_worker(
    pool: Any, store: PostgresWebhookStore, merchant_id: str
) -> None:
    await seven_events(pool, merchant_id)
    endpoint, _ = await store.create_endpoint(
        merchant_id, EndpointSettings(url="https://example.com/hook")
    )
    jobs = [await new_replay(store, merchant_id, endpoint) for _ in range(3)]

    claims = await asyncio.gather(*(store.claim_replay(30) for _ in range(8)))

    won = sorted(claim.replay_id for claim in claims if claim is not None)
    assert won == sorted(job.replay_id for job in jobs)  # each once, none twice
    assert await store.claim_replay(30) is None


# --- an endpoint gone meanwhile ---------------------------------------------------------------


@pytest.mark.parametrize("gone", ["disabled", "deleted"])
async def test_a_replay_whose_endpoint_went_away_is_cancelled(
    pool: Any, store: PostgresWebhookStore, merchant_id: str, gone: str
) -> None:
    events = await seven_events(pool, merchant_id)
    endpoint, _ = await store.create_endpoint(
        merchant_id, EndpointSettings(url="https://example.com/hook", event_types=("*",))
    )
    job = await new_replay(store, merchant_id, endpoint)
    claimed = await store.claim_replay(30)
    assert claimed is not None
    _, claimed = await store.queue_replay_batch(claimed, endpoint, BATCH, 30)
    assert claimed.queued == BATCH

    if gone == "disabled":
        changed = await store.update_endpoint(merchant_id, endpoint.endpoint_id, {"enabled": False})
        assert changed is not None and not changed.enabled
    else:
        assert await store.delete_endpoint(merchant_id, endpoint.endpoint_id)

    recorder = Recorder()
    await ReplayQueue(store, recorder.publish, recorder.wake, batch=BATCH)._work(claimed)

    final = await store.replay_job(merchant_id, job.replay_id)
    assert final is not None
    assert (final.status, final.queued) == ("cancelled", BATCH)
    assert final.completed_at is not None
    assert recorder.published == [] and recorder.wakes == 0
    rows = await replay_deliveries(pool, endpoint.endpoint_id)
    assert [row[1] for row in rows] == [event.event_id for event in events[:BATCH]]

    # Nobody takes it up again, not even once its lease has run out.
    await execute(
        pool,
        "UPDATE webhook_replays SET leased_until = NULL WHERE replay_id = %s",
        (job.replay_id,),
    )
    assert await store.claim_replay(30) is None
    if gone == "disabled":  # enabled again: the cancelled replay stays cancelled
        await store.update_endpoint(merchant_id, endpoint.endpoint_id, {"enabled": True})
        assert await store.claim_replay(30) is None


async def test_a_cancelled_replay_is_not_queued_further_by_a_stale_worker(
    pool: Any, store: PostgresWebhookStore, merchant_id: str
) -> None:
    await seven_events(pool, merchant_id)
    endpoint, _ = await store.create_endpoint(
        merchant_id, EndpointSettings(url="https://example.com/hook", event_types=("*",))
    )
    job = await new_replay(store, merchant_id, endpoint)
    # Worker A claimed the replay and checked its endpoint (replays.py, _work) ...
    stale = await store.claim_replay(0.1)
    assert stale is not None
    # ... meanwhile the endpoint is disabled and worker B, the lease having run out, cancels it.
    await store.update_endpoint(merchant_id, endpoint.endpoint_id, {"enabled": False})
    await asyncio.sleep(0.3)
    taken_over = await store.claim_replay(30)
    assert taken_over is not None
    await store.cancel_replay(taken_over.replay_id)

    # A goes on with the endpoint it read before.
    sent, _ = await store.queue_replay_batch(stale, endpoint, 100, 30)

    final = await store.replay_job(merchant_id, job.replay_id)
    assert final is not None
    rows = await replay_deliveries(pool, endpoint.endpoint_id)
    assert (final.status, final.queued, len(rows), sent) == ("cancelled", 0, 0, [])


async def test_a_batch_for_an_endpoint_disabled_since_it_was_read_cancels_the_replay(
    pool: Any, store: PostgresWebhookStore, merchant_id: str
) -> None:
    """One worker: the endpoint is disabled between its check and the batch (re-checked under
    the replay's lock, so no delivery is queued to the disabled endpoint)."""
    await seven_events(pool, merchant_id)
    endpoint, _ = await store.create_endpoint(
        merchant_id, EndpointSettings(url="https://example.com/hook", event_types=("*",))
    )
    job = await new_replay(store, merchant_id, endpoint)
    claimed = await store.claim_replay(30)
    assert claimed is not None
    await store.update_endpoint(merchant_id, endpoint.endpoint_id, {"enabled": False})
    sent, after = await store.queue_replay_batch(claimed, endpoint, 100, 30)
    assert (sent, after.status, after.queued) == ([], "cancelled", 0)
    assert await replay_deliveries(pool, endpoint.endpoint_id) == []
    assert job.replay_id == after.replay_id


async def test_a_notification_for_an_endpoint_deleted_meanwhile_is_not_queued(
    store: PostgresWebhookStore, merchant_id: str
) -> None:
    # A fan-out that read the subscribers before the deletion (or from a cache that had not yet
    # heard of it) must not leave a delivery that nothing will ever send.
    endpoint, _ = await store.create_endpoint(
        merchant_id, EndpointSettings(url="https://example.com/hook", event_types=("*",))
    )

    def notification() -> Notification:
        event_id = str(uuid.uuid4())
        return Notification(
            delivery_id=f"whd_{secrets.token_hex(16)}",
            endpoint_id=endpoint.endpoint_id,
            merchant_id=merchant_id,
            origin="event",
            event={"event_id": event_id, "event_type": "InvoicePaid", "aggregate_id": "inv_x"},
        )

    assert await store.enqueue(notification())  # the endpoint is there: queued
    assert await store.delete_endpoint(merchant_id, endpoint.endpoint_id)
    assert not await store.enqueue(notification())


async def test_a_batch_of_notifications_is_queued_in_order_once_and_not_for_deleted_endpoints(
    store: PostgresWebhookStore, pool: Any, merchant_id: str
) -> None:
    # The delivery intake queues what it reads in one statement: the order of the batch becomes
    # the queue order (seq), which the dispatcher keeps per endpoint and invoice.
    kept, _ = await store.create_endpoint(
        merchant_id, EndpointSettings(url="https://example.com/kept", event_types=("*",))
    )
    gone, _ = await store.create_endpoint(
        merchant_id, EndpointSettings(url="https://example.com/gone", event_types=("*",))
    )
    assert await store.delete_endpoint(merchant_id, gone.endpoint_id)

    def notification(endpoint: WebhookEndpoint, aggregate_id: str) -> Notification:
        return Notification(
            delivery_id=f"whd_{secrets.token_hex(16)}",
            endpoint_id=endpoint.endpoint_id,
            merchant_id=merchant_id,
            origin="event",
            event={"event_id": str(uuid.uuid4()), "event_type": "InvoicePaid",
                   "aggregate_id": aggregate_id, "data": {"note": "ünïcode ✓"}},
        )  # fmt: skip

    batch = [notification(kept, f"inv_{i % 3}") for i in range(30)]
    batch.insert(7, notification(gone, "inv_1"))
    queued = await store.enqueue_batch([*batch, batch[0]])  # one redelivered in the same batch
    expected = [n.delivery_id for n in batch if n.endpoint_id == kept.endpoint_id]
    assert queued == set(expected)
    assert await store.enqueue_batch(batch[:5]) == set()  # a redelivered batch queues nothing

    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT delivery_id, event FROM webhook_deliveries WHERE endpoint_id = ANY(%s)"
            " ORDER BY seq",
            ([kept.endpoint_id, gone.endpoint_id],),
        )
        rows = await cur.fetchall()
    assert [row[0] for row in rows] == expected
    assert rows[0][1] == batch[0].event  # the envelope as published, as jsonb


async def test_an_attempt_is_recorded_in_one_round_trip_and_a_success_ends_the_failures(
    store: PostgresWebhookStore, pool: Any, merchant_id: str
) -> None:
    from app.domain.webhooks import Attempt

    endpoint, _ = await store.create_endpoint(
        merchant_id, EndpointSettings(url="https://example.com/hook", event_types=("*",))
    )
    notification = Notification(
        delivery_id=f"whd_{secrets.token_hex(16)}",
        endpoint_id=endpoint.endpoint_id,
        merchant_id=merchant_id,
        origin="event",
        event={"event_id": str(uuid.uuid4()), "event_type": "InvoicePaid", "aggregate_id": "inv_r"},
    )
    assert await store.enqueue(notification)
    [claimed] = await store.claim_due(10, 30, [], 10)
    started = datetime.now(UTC)

    failed = Attempt(1, started, 12, 503, "HTTP 503", "busy")
    assert await store.record_attempt(claimed, failed, succeeded=False, retry_in=60) == "pending"
    await store.note_failure(endpoint.endpoint_id, started)
    assert await store.claim_due(10, 30, [], 10) == []  # due again in 60 s, lease released

    ok = Attempt(2, started, 3, 200, None, "ok")
    assert await store.record_attempt(claimed, ok, succeeded=True, retry_in=None) == "succeeded"
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT status, leased_until, completed_at IS NOT NULL, last_error"
            " FROM webhook_deliveries WHERE delivery_id = %s",
            (notification.delivery_id,),
        )
        assert await cur.fetchone() == ("succeeded", None, True, None)
        await cur.execute(
            "SELECT attempt, status_code, error FROM webhook_attempts WHERE delivery_id = %s"
            " ORDER BY attempt",
            (notification.delivery_id,),
        )
        assert await cur.fetchall() == [(1, 503, "HTTP 503"), (2, 200, None)]
        await cur.execute(
            "SELECT failing_since FROM webhook_endpoints WHERE endpoint_id = %s",
            (endpoint.endpoint_id,),
        )
        assert await cur.fetchone() == (None,)  # the success ended the run of failures
    # Recorded again (a dispatcher that lost the answer): the attempt is logged once.
    assert await store.record_attempt(claimed, ok, succeeded=True, retry_in=None) == "succeeded"
