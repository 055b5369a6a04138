from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.runtime.retry import DependencyWaits, RetryPolicy

pytestmark = pytest.mark.unit


@given(st.integers(min_value=0, max_value=40))
def test_backoff_is_jittered_under_an_exponential_ceiling(retry: int) -> None:
    policy = RetryPolicy(initial_delay=0.25, multiplier=2.0, max_delay=8.0)

    delay = policy.delay(retry)

    assert 0.0 <= delay <= min(8.0, 0.25 * 2.0**retry)


def test_a_policy_makes_at_least_one_attempt() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RetryPolicy(attempts=0)


async def test_a_transient_failure_is_retried_until_it_succeeds() -> None:
    calls: list[int] = []
    slept: list[float] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise ConnectionError("refused")
        return "done"

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    assert await RetryPolicy().run(flaky, what="test", sleep=sleep) == "done"
    assert len(calls) == 4 and len(slept) == 3


async def test_a_bounded_policy_raises_the_last_transient_failure() -> None:
    async def down() -> None:
        raise ConnectionError("still refused")

    async def sleep(seconds: float) -> None:
        pass

    with pytest.raises(ConnectionError, match="still refused"):
        await RetryPolicy(attempts=3).run(down, what="test", sleep=sleep)


async def test_what_is_wrong_is_never_retried() -> None:
    calls: list[int] = []

    async def wrong() -> None:
        calls.append(1)
        raise ValueError("malformed")

    with pytest.raises(ValueError, match="malformed"):
        await RetryPolicy().run(wrong, what="test")
    assert calls == [1]


async def test_an_operation_waiting_out_a_dependency_is_counted_until_it_is_done() -> None:
    # The stall watchdog reads it (app/runtime/stall.py): a partition held still on purpose.
    waits = DependencyWaits()
    seen: list[bool] = []

    async def flaky() -> str:
        if len(seen) < 2:
            raise ConnectionError("refused")
        return "done"

    async def sleep(seconds: float) -> None:
        seen.append(waits.active(time.monotonic(), within=0))

    assert not waits.active(time.monotonic(), within=0)
    assert await RetryPolicy().run(flaky, what="test", sleep=sleep, waits=waits) == "done"
    assert seen == [True, True]
    now = time.monotonic()
    assert not waits.active(now + 10, within=5)
    assert waits.active(now, within=5)  # it waited a moment ago


async def test_a_wait_given_up_or_cancelled_is_no_longer_counted() -> None:
    waits = DependencyWaits()

    async def down() -> str:
        raise ConnectionError("refused")

    async def no_sleep(seconds: float) -> None:
        return None

    with pytest.raises(ConnectionError):
        await RetryPolicy(attempts=3).run(down, what="test", sleep=no_sleep, waits=waits)
    assert not waits.active(time.monotonic() + 1, within=0)

    async def cancelled(seconds: float) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await RetryPolicy().run(down, what="test", sleep=cancelled, waits=waits)
    assert not waits.active(time.monotonic() + 1, within=0)


async def test_an_operation_that_never_failed_never_waited() -> None:
    waits = DependencyWaits()

    async def fine() -> str:
        return "done"

    await RetryPolicy().run(fine, what="test", waits=waits)
    assert not waits.active(time.monotonic(), within=3600)
