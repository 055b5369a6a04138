"""The dispatcher's decisions after an attempt, and its per-endpoint limit, with a fake store."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.adapters.postgres.webhook_store import ClaimedDelivery
from app.adapters.webhooks.dispatcher import (
    AttemptOutcome,
    DispatchSettings,
    WebhookDispatcher,
    WebhookSender,
)
from app.adapters.webhooks.ssrf import UrlPolicy
from app.domain.webhooks import Attempt, WebhookEndpoint

pytestmark = pytest.mark.unit

NOW = datetime.now(UTC)
SCHEDULE = (1.0, 2.0, 4.0)  # 4 attempts in all


def claimed(delivery_id: str = "whd_1", endpoint_id: str = "we_1", attempt: int = 1) -> Any:
    return ClaimedDelivery(
        delivery_id=delivery_id,
        endpoint_id=endpoint_id,
        merchant_id="mer_1",
        aggregate_id="inv_1",
        attempt=attempt,
        event={
            "event_id": "e1",
            "event_type": "InvoicePaid",
            "schema_version": 1,
            "aggregate_type": "invoice",
            "aggregate_id": "inv_1",
            "aggregate_version": 4,
            "merchant_id": "mer_1",
            "occurred_at": "2026-11-22T10:00:00Z",
            "data": {},
        },
        url="https://shop.example/hooks",
        secrets=("whsec_x",),
        origin="event",
        redelivery_of=None,
    )


def outcome(attempt: int, *, ok: bool, platform_fault: bool = False) -> AttemptOutcome:
    error = None if ok else "HTTP 500"
    record = Attempt(attempt, NOW, 12, 200 if ok else 500, error, None)
    return AttemptOutcome(record, succeeded=ok, platform_fault=platform_fault)


def endpoint(**changes: Any) -> WebhookEndpoint:
    base = WebhookEndpoint(
        endpoint_id="we_1",
        merchant_id="mer_1",
        url="https://shop.example/hooks",
        description=None,
        event_types=("*",),
        enabled=False,
        disabled_reason="failing",
        disabled_at=NOW,
        failing_since=NOW - timedelta(days=6),
        previous_secret_expires_at=None,
        version=2,
        created_at=NOW,
        updated_at=NOW,
    )
    return replace(base, **changes)


@dataclass
class FakeStore:
    failing_since: datetime = NOW
    disable_answer: WebhookEndpoint | None = None
    to_claim: list[ClaimedDelivery] = field(default_factory=list)
    recorded: list[tuple[str, int, bool, float | None]] = field(default_factory=list)
    successes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    disable_calls: int = 0
    claim_calls: list[tuple[int, list[str]]] = field(default_factory=list)
    released: list[str] = field(default_factory=list)

    async def record_attempt(
        self, delivery: ClaimedDelivery, attempt: Attempt, *, succeeded: bool, retry_in: Any
    ) -> str:
        self.recorded.append((delivery.delivery_id, attempt.attempt, succeeded, retry_in))
        if succeeded:  # as PostgresWebhookStore: the endpoint's failures end with it
            self.successes.append(delivery.endpoint_id)
            return "succeeded"
        return "pending" if retry_in is not None else "failed"

    async def note_success(self, endpoint_id: str) -> None:
        self.successes.append(endpoint_id)

    async def note_failure(self, endpoint_id: str, failed_at: datetime) -> datetime:
        self.failures.append(endpoint_id)
        return self.failing_since

    async def disable_failing(self, endpoint_id: str) -> WebhookEndpoint | None:
        self.disable_calls += 1
        return self.disable_answer

    async def claim_due(
        self, limit: int, lease: float, busy_endpoints: list[str], per_endpoint: int
    ) -> list[ClaimedDelivery]:
        # Deliberately ignores per_endpoint, as a claim racing with attempts in flight may.
        self.claim_calls.append((limit, sorted(busy_endpoints)))
        eligible = [d for d in self.to_claim if d.endpoint_id not in busy_endpoints][:limit]
        self.to_claim = [d for d in self.to_claim if d not in eligible]
        return eligible

    async def release(self, delivery_ids: list[str]) -> None:
        self.released.extend(delivery_ids)
        self.to_claim.extend(claimed(delivery_id, "we_a") for delivery_id in delivery_ids)


@dataclass
class Reports:
    dead_letters: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)

    async def dead_letter(self, delivery: ClaimedDelivery, attempt: Attempt) -> None:
        self.dead_letters.append(delivery.delivery_id)

    async def on_disabled(self, disabled: WebhookEndpoint) -> None:
        self.disabled.append(disabled.endpoint_id)


def dispatcher(
    store: FakeStore,
    reports: Reports,
    sender: Any = None,
    **settings: Any,
) -> WebhookDispatcher:
    config = DispatchSettings(
        policy=UrlPolicy(require_https=True, allow_loopback=False),
        retry_schedule=SCHEDULE,
        disable_after=timedelta(days=5).total_seconds(),
        **settings,
    )
    return WebhookDispatcher(
        store,  # type: ignore[arg-type]
        sender or WebhookSender(config.policy, 1.0, 1),
        config,
        on_dead_letter=reports.dead_letter,
        on_disabled=reports.on_disabled,
        rng=random.Random(7),
    )


async def test_a_success_is_recorded_and_clears_the_failure_run() -> None:
    store, reports = FakeStore(), Reports()
    status = await dispatcher(store, reports).settle(claimed(), outcome(1, ok=True))
    assert status == "succeeded"
    assert store.recorded == [("whd_1", 1, True, None)]
    assert store.successes == ["we_1"] and store.failures == []
    assert reports.dead_letters == [] and reports.disabled == []


@pytest.mark.parametrize(("attempt", "base"), [(1, 1.0), (2, 2.0), (3, 4.0)])
async def test_a_failure_with_retries_left_is_rescheduled_with_jitter(
    attempt: int, base: float
) -> None:
    store, reports = FakeStore(), Reports()
    status = await dispatcher(store, reports).settle(
        claimed(attempt=attempt), outcome(attempt, ok=False)
    )
    assert status == "pending"
    (_, _, succeeded, retry_in) = store.recorded[0]
    assert not succeeded and retry_in is not None
    assert 0.8 * base <= retry_in <= 1.2 * base
    assert store.failures == ["we_1"]
    assert reports.dead_letters == []


async def test_the_last_failure_is_dead_lettered() -> None:
    store, reports = FakeStore(), Reports()
    status = await dispatcher(store, reports).settle(claimed(attempt=4), outcome(4, ok=False))
    assert status == "failed"
    assert store.recorded[0][3] is None
    assert reports.dead_letters == ["whd_1"]


async def test_an_endpoint_failing_for_less_than_the_limit_stays_enabled() -> None:
    store, reports = FakeStore(failing_since=NOW - timedelta(days=4)), Reports()
    await dispatcher(store, reports).settle(claimed(), outcome(1, ok=False))
    assert store.disable_calls == 0 and reports.disabled == []


async def test_an_endpoint_failing_past_the_limit_is_disabled_and_announced_once() -> None:
    store = FakeStore(failing_since=NOW - timedelta(days=6), disable_answer=endpoint())
    reports = Reports()
    await dispatcher(store, reports).settle(claimed(), outcome(1, ok=False))
    assert store.disable_calls == 1 and reports.disabled == ["we_1"]

    # Another worker disabled it first: nothing is announced twice.
    store.disable_answer = None
    await dispatcher(store, reports).settle(claimed(), outcome(1, ok=False))
    assert store.disable_calls == 2 and reports.disabled == ["we_1"]


async def test_a_platform_fault_never_counts_against_the_merchant() -> None:
    store = FakeStore(failing_since=NOW - timedelta(days=30), disable_answer=endpoint())
    reports = Reports()
    await dispatcher(store, reports).settle(claimed(), outcome(1, ok=False, platform_fault=True))
    assert store.recorded and store.failures == [] and store.disable_calls == 0


async def test_an_unopenable_secret_fails_the_attempt_without_sending() -> None:
    sender = WebhookSender(UrlPolicy(require_https=True, allow_loopback=False), 1.0, 1)
    await sender.start()
    try:
        broken = replace(claimed(), secrets=(), secret_error="unknown key id 'k1'")
        result = await sender.attempt(broken)
    finally:
        await sender.close()
    assert not result.succeeded and result.platform_fault
    assert result.attempt.status_code is None
    assert "signing secret cannot be decrypted" in (result.attempt.error or "")


class SlowSender:
    """Holds every attempt until released, to see how many run at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started: list[str] = []

    async def attempt(self, delivery: ClaimedDelivery) -> AttemptOutcome:
        self.started.append(delivery.delivery_id)
        await self.release.wait()
        return outcome(delivery.attempt, ok=True)


async def test_one_endpoint_cannot_take_more_than_its_share_of_slots() -> None:
    store, reports, sender = FakeStore(), Reports(), SlowSender()
    store.to_claim = [claimed(f"whd_a{i}", "we_a") for i in range(5)] + [claimed("whd_b0", "we_b")]
    subject = dispatcher(store, reports, sender, concurrency=10, endpoint_concurrency=2)
    running = asyncio.create_task(subject.run())
    try:
        for _ in range(50):
            await asyncio.sleep(0.01)
            if len(sender.started) >= 3:
                break
        # Two of we_a's five, and we_b's one: we_a's slow server does not take every slot.
        assert sorted(sender.started) == ["whd_a0", "whd_a1", "whd_b0"]
        # The others went back unattempted, and later claims leave the saturated endpoint out.
        assert sorted(store.released) == ["whd_a2", "whd_a3", "whd_a4"]
        assert any(busy == ["we_a"] for _, busy in store.claim_calls[1:])
        sender.release.set()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(sender.started) == 6:
                break
        assert sorted(sender.started) == [*(f"whd_a{i}" for i in range(5)), "whd_b0"]
    finally:
        sender.release.set()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
