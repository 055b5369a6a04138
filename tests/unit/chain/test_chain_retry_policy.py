from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.adapters.tron.node import RetryPolicy

pytestmark = pytest.mark.unit


@given(st.integers(min_value=0, max_value=40))
def test_backoff_is_jittered_under_an_exponential_ceiling(retry: int) -> None:
    policy = RetryPolicy(initial_delay=0.25, multiplier=2.0, max_delay=8.0)

    delay = policy.delay(retry)

    assert 0.0 <= delay <= min(8.0, 0.25 * 2.0**retry)


def test_a_policy_makes_at_least_one_attempt() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RetryPolicy(attempts=0)
