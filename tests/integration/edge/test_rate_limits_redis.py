"""``RateLimiter`` on the real Redis: bursts, one shared budget, costs, refills, failing open.

Each test has its own key prefix, so tests never share a bucket. Durations are asserted on the
decisions Redis returns (with tolerances), never on how long a test took: these machines are shared.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from app.adapters.redis import rate_limits
from app.adapters.redis.rate_limits import RateLimiter
from app.services.rate_limits import Decision, parse_rate

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

REDIS_URL = "redis://127.0.0.1:6379/0"
NOBODY_LISTENS = "redis://127.0.0.1:1/0"


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def prefix(redis_client: aioredis.Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own; its buckets are removed afterwards."""
    unique = f"test:rl:{uuid.uuid4().hex}:"
    yield unique
    async for key in redis_client.scan_iter(match=f"{unique}*"):
        await redis_client.delete(key)


@pytest.fixture
def limiter(redis_client: aioredis.Redis, prefix: str) -> RateLimiter:
    return RateLimiter(redis_client, prefix=prefix)


async def test_a_burst_of_count_is_allowed_then_one_every_period_over_count(
    limiter: RateLimiter,
) -> None:
    rate = parse_rate("5/minute")
    burst = [await limiter.hit("ip:203.0.113.7", rate) for _ in range(5)]
    assert all(decision.allowed for decision in burst)
    assert [decision.remaining for decision in burst] == [4, 3, 2, 1, 0]
    assert all(decision.limit == 5 and decision.retry_after == 0 for decision in burst)
    assert burst[0].reset_after == pytest.approx(12.0, abs=0.5)
    assert burst[-1].reset_after == pytest.approx(60.0, abs=1.0)

    refused = await limiter.hit("ip:203.0.113.7", rate)
    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.limit == 5
    # One request frees up every 60 s / 5 = 12 s, counted from the first of the burst.
    assert 11.0 < refused.retry_after <= 12.0
    assert refused.reset_after == pytest.approx(60.0, abs=1.0)


async def test_a_refused_request_spends_nothing(limiter: RateLimiter) -> None:
    rate = parse_rate("2/minute")
    for _ in range(2):
        assert (await limiter.hit("k", rate)).allowed
    refusals = [await limiter.hit("k", rate) for _ in range(5)]
    assert not any(decision.allowed for decision in refusals)
    # Still one interval (30 s) away, not five more of them.
    assert all(decision.retry_after <= 30.0 for decision in refusals)


async def test_two_workers_share_one_budget(prefix: str) -> None:
    # Two "workers": each its own Redis client and its own limiter, the same keys.
    clients = [aioredis.from_url(REDIS_URL) for _ in range(2)]
    try:
        first, second = (RateLimiter(client, prefix=prefix) for client in clients)
        rate = parse_rate("10/minute")
        for _ in range(3):
            assert (await first.hit("merchant:m_1", rate)).allowed
        decision = await second.hit("merchant:m_1", rate)
        assert decision.allowed
        assert decision.remaining == 6

        # All at once from both: exactly the six left get through.
        racing = await asyncio.gather(
            *(limiter.hit("merchant:m_1", rate) for limiter in [first, second] * 10)
        )
        assert sum(decision.allowed for decision in racing) == 6
        assert not (await first.hit("merchant:m_1", rate)).allowed
        assert not (await second.hit("merchant:m_1", rate)).allowed
    finally:
        for client in clients:
            await client.aclose()


async def test_different_keys_have_their_own_budgets(limiter: RateLimiter) -> None:
    rate = parse_rate("3/hour")
    for _ in range(3):
        await limiter.hit("ip:198.51.100.1", rate)
    assert not (await limiter.hit("ip:198.51.100.1", rate)).allowed

    other = await limiter.hit("ip:198.51.100.2", rate)
    assert other.allowed
    assert other.remaining == 2


async def test_a_cost_spends_that_much_of_the_budget(limiter: RateLimiter) -> None:
    rate = parse_rate("10/minute")
    assert (await limiter.hit("k", rate, cost=4)).remaining == 6
    eight = await limiter.hit("k", rate, cost=4)
    assert eight.allowed
    assert eight.remaining == 2

    too_dear = await limiter.hit("k", rate, cost=3)
    assert not too_dear.allowed
    assert too_dear.remaining == 2  # what is left is still there for a cheaper request
    assert 5.0 < too_dear.retry_after <= 6.0  # one more request's worth: 60 s / 10

    last_two = await limiter.hit("k", rate, cost=2)
    assert last_two.allowed
    assert last_two.remaining == 0


async def test_a_cost_outside_one_to_count_is_a_mistake(limiter: RateLimiter) -> None:
    rate = parse_rate("10/minute")
    for cost in (0, -1, 11):
        with pytest.raises(ValueError, match="cost"):
            await limiter.hit("k", rate, cost=cost)


async def test_after_retry_after_a_request_is_allowed_again(limiter: RateLimiter) -> None:
    rate = parse_rate("20/second")
    for _ in range(20):
        assert (await limiter.hit("k", rate)).allowed
    refused = await limiter.hit("k", rate)
    assert not refused.allowed
    assert 0.0 < refused.retry_after <= 0.05

    await asyncio.sleep(refused.retry_after + 0.005)
    again = await limiter.hit("k", rate)
    assert again.allowed
    assert again.retry_after == 0


async def test_a_bucket_expires_soon_after_it_is_full_again(
    limiter: RateLimiter, redis_client: aioredis.Redis, prefix: str
) -> None:
    decision = await limiter.hit("k", parse_rate("5/minute"))
    ttl_ms = await redis_client.pttl(f"{prefix}k")
    # Full again in 12 s; the key lives that long and not much more.
    assert decision.reset_after * 1000 < ttl_ms <= decision.reset_after * 1000 + 1_000


def failures(error: str) -> float:
    value = REGISTRY.get_sample_value("checkout_rate_limiter_failures_total", {"error": error})
    return value or 0.0


async def test_without_redis_requests_are_let_through_counted_and_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A fresh throttle for the warning, so an earlier test's outage does not hide this one's.
    monkeypatch.setattr(rate_limits, "_outage_warning", rate_limits._EveryAtMost(10.0))
    client = aioredis.from_url(NOBODY_LISTENS, socket_connect_timeout=0.2)
    try:
        limiter = RateLimiter(client)
        before = failures("ConnectionError")
        rate = parse_rate("5/minute")
        with caplog.at_level(logging.WARNING, logger=rate_limits.__name__):
            decisions = [await limiter.hit("ip:192.0.2.1", rate, cost=2) for _ in range(3)]
    finally:
        await client.aclose()

    assert (
        decisions
        == [Decision(allowed=True, limit=5, remaining=3, reset_after=0, retry_after=0)] * 3
    )
    assert failures("ConnectionError") == before + 3
    warnings = [record for record in caplog.records if record.name == rate_limits.__name__]
    assert len(warnings) == 1
    assert "let through while Redis is down" in warnings[0].getMessage()


async def test_peeking_spends_nothing_and_sees_an_exhausted_budget(limiter: RateLimiter) -> None:
    rate = parse_rate("2/minute")
    for _ in range(5):
        assert (await limiter.peek("login:a", rate)).allowed
    assert (await limiter.hit("login:a", rate)).remaining == 1
    assert (await limiter.peek("login:a", rate)).remaining == 1
    await limiter.hit("login:a", rate)
    blocked = await limiter.peek("login:a", rate)
    assert not blocked.allowed
    assert 0 < blocked.retry_after <= 30


async def test_a_refund_gives_back_what_a_hit_spent(limiter: RateLimiter) -> None:
    rate = parse_rate("3/hour")
    for _ in range(3):
        await limiter.hit("signin:a", rate)
    assert not (await limiter.peek("signin:a", rate)).allowed
    await limiter.refund("signin:a", rate)
    assert (await limiter.peek("signin:a", rate)).remaining == 1
    for _ in range(5):  # refunding more than was spent leaves a full budget, no more
        await limiter.refund("signin:a", rate)
    assert (await limiter.hit("signin:a", rate)).remaining == 2
