from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.adapters.webhooks.schedule import (
    DEFAULT_RETRY_SCHEDULE,
    JITTER,
    format_duration,
    max_attempts,
    next_attempt_delay,
    parse_duration,
    parse_retry_schedule,
)

pytestmark = pytest.mark.unit

DAY = 86_400.0
HOUR = 3_600.0

schedules = st.lists(
    st.floats(min_value=0.001, max_value=7 * DAY, allow_nan=False), min_size=1, max_size=20
).map(tuple)


def test_the_default_schedule_is_stripe_like_and_spans_about_three_days() -> None:
    assert DEFAULT_RETRY_SCHEDULE[:4] == (10, 60, 300, 1800)
    assert list(DEFAULT_RETRY_SCHEDULE) == sorted(DEFAULT_RETRY_SCHEDULE)
    assert 3 * DAY - 4 * HOUR <= sum(DEFAULT_RETRY_SCHEDULE) <= 3 * DAY + 4 * HOUR
    assert max(DEFAULT_RETRY_SCHEDULE) == 12 * HOUR
    assert max_attempts(DEFAULT_RETRY_SCHEDULE) == 14
    assert format_duration(sum(DEFAULT_RETRY_SCHEDULE)) == "3 d 3 h 36 min 10 s"


def test_the_first_retry_comes_after_about_ten_seconds_and_the_last_attempt_gets_none() -> None:
    rng = random.Random(7)

    first = next_attempt_delay(DEFAULT_RETRY_SCHEDULE, 1, rng)
    last = next_attempt_delay(DEFAULT_RETRY_SCHEDULE, 14, rng)

    assert first is not None
    assert 8.0 <= first <= 12.0
    assert last is None


@given(schedule=schedules, attempts_made=st.integers(min_value=1, max_value=30), seed=st.integers())
def test_every_delay_is_its_base_jittered_by_at_most_20_percent(
    schedule: tuple[float, ...], attempts_made: int, seed: int
) -> None:
    delay = next_attempt_delay(schedule, attempts_made, random.Random(seed))

    if attempts_made > len(schedule):
        assert delay is None
    else:
        base = schedule[attempts_made - 1]
        assert delay is not None
        assert base * (1 - JITTER) <= delay <= base * (1 + JITTER)


@given(schedule=schedules, seed=st.integers())
def test_a_delivery_gets_exactly_one_attempt_more_than_the_schedule_has_delays(
    schedule: tuple[float, ...], seed: int
) -> None:
    rng = random.Random(seed)
    attempts = 1
    while next_attempt_delay(schedule, attempts, rng) is not None:
        attempts += 1

    assert attempts == max_attempts(schedule) == len(schedule) + 1


@given(seed=st.integers())
def test_the_jittered_default_schedule_still_spans_about_three_days(seed: int) -> None:
    rng = random.Random(seed)
    delays = [
        next_attempt_delay(DEFAULT_RETRY_SCHEDULE, attempt, rng)
        for attempt in range(1, max_attempts(DEFAULT_RETRY_SCHEDULE))
    ]

    total = sum(delay for delay in delays if delay is not None)
    assert None not in delays
    assert 0.8 * 3 * DAY <= total <= 1.2 * 3 * DAY + 4 * HOUR


def test_jitter_spreads_retries_of_the_same_attempt() -> None:
    rng = random.Random(1)

    delays = sorted(next_attempt_delay((100.0,), 1, rng) or 0.0 for _ in range(50))

    assert len(set(delays)) == 50
    assert delays[0] < 90.0
    assert delays[-1] > 110.0


def test_without_an_rng_the_module_random_jitters() -> None:
    delay = next_attempt_delay((100.0,), 1)

    assert delay is not None
    assert 80.0 <= delay <= 120.0


@pytest.mark.parametrize("attempts_made", [0, -1])
def test_there_is_no_next_attempt_before_the_first(attempts_made: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        next_attempt_delay(DEFAULT_RETRY_SCHEDULE, attempts_made)


# --- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "schedule"),
    [
        ("10s,1m,5m,2h,1d", (10.0, 60.0, 300.0, 7200.0, 86400.0)),
        ("0.2,0.5", (0.2, 0.5)),
        (" 250ms , 1.5s, .5 ", (0.25, 1.5, 0.5)),
        ("3", (3.0,)),
        ("1.5h", (5400.0,)),
        ("2 m", (120.0,)),
    ],
)
def test_a_schedule_is_comma_separated_durations(text: str, schedule: tuple[float, ...]) -> None:
    assert parse_retry_schedule(text) == pytest.approx(schedule)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("  ", "empty"),
        ("10s,,1m", "item 2: '' is not a duration"),
        ("10s,1m,", "item 3: '' is not a duration"),
        ("10s,soon", "item 2: 'soon' is not a duration"),
        ("1w", "item 1: '1w' is not a duration"),
        ("-5s", "item 1: '-5s' is not a duration"),
        ("0", "item 1: '0' must be a duration above zero"),
        ("1m,0s", "item 2: '0s' must be a duration above zero"),
        ("1e3", "'1e3' is not a duration"),
        ("nan", "'nan' is not a duration"),
        ("9" * 400, "must be a duration above zero"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_item(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_retry_schedule(text)


def test_the_default_schedule_round_trips_through_its_text_form() -> None:
    text = ",".join(f"{delay:g}s" for delay in DEFAULT_RETRY_SCHEDULE)

    assert parse_retry_schedule(text) == DEFAULT_RETRY_SCHEDULE


def test_parse_duration_reads_one_duration() -> None:
    assert parse_duration("1d") == DAY


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(10, "10 s"), (60, "1 min"), (5400, "1 h 30 min"), (DAY + 1, "1 d 1 s"), (0.25, "0.25 s")],
)
def test_durations_read_well_in_docs_and_logs(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
