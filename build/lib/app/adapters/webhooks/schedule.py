"""When a failed webhook delivery is tried again.

Failed deliveries are retried on ``DEFAULT_RETRY_SCHEDULE`` (about three days, like Stripe) with
±20 % jitter so that an endpoint that comes back after an outage is not hit by every queued delivery
in the same second. ``WEBHOOK_RETRY_SCHEDULE`` replaces the schedule (``parse_retry_schedule``).

Nothing here does IO: the dispatcher owns the clock and the random source.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from typing import Final

# --- retry schedule -----------------------------------------------------------------------------

_MINUTE: Final = 60.0
_HOUR: Final = 60 * _MINUTE

DEFAULT_RETRY_SCHEDULE: Final[tuple[float, ...]] = (
    10.0,
    _MINUTE,
    5 * _MINUTE,
    30 * _MINUTE,
    _HOUR,
    2 * _HOUR,
    4 * _HOUR,
    8 * _HOUR,
    12 * _HOUR,
    12 * _HOUR,
    12 * _HOUR,
    12 * _HOUR,
    12 * _HOUR,
)
"""Seconds to wait before attempt 2, 3, …; attempt 1 is immediate.

Fast at first (a deploy, a restarting process: 10 s, 1 min, 5 min, 30 min), then doubling (1 h to
8 h), then twice a day: 14 attempts over 3 days 3 h 36 min 10 s, so an endpoint that is down over
a long weekend night still gets the event, and a merchant who fixes their endpoint within three
days loses nothing. ``WEBHOOK_RETRY_SCHEDULE`` replaces it (``parse_retry_schedule``).
"""

JITTER: Final = 0.2
"""Each delay is drawn uniformly from ``(1 - JITTER, 1 + JITTER) × base``."""

_DURATION_UNITS: Final[Mapping[str, float]] = {
    "": 1.0,
    "ms": 0.001,
    "s": 1.0,
    "m": _MINUTE,
    "h": _HOUR,
    "d": 24 * _HOUR,
}
_DURATION: Final = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?P<unit>ms|s|m|h|d|)")


def parse_duration(text: str) -> float:
    """Seconds from ``"10s"``, ``"1m"``, ``"2h"``, ``"1d"``, ``"250ms"`` or bare seconds ``"0.2"``.

    Raises ``ValueError`` naming the text unless it is a positive, finite duration.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: use a number with s, m, h, d or ms (10s, 5m, 2h, 1d), "
            "or bare seconds (0.5)"
        )
    seconds = float(match["number"]) * _DURATION_UNITS[match["unit"]]
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{text!r} must be a duration above zero")
    return seconds


def parse_retry_schedule(text: str) -> tuple[float, ...]:
    """A retry schedule from comma-separated durations: ``"10s,1m,5m,2h,1d"`` or ``"0.2,0.5"``.

    Raises ``ValueError`` naming the bad item (and its position); the schedule must not be empty.
    """
    items = text.split(",")
    if not text.strip():
        raise ValueError("the retry schedule is empty: give at least one delay, e.g. 10s,1m,1h")
    schedule = []
    for position, item in enumerate(items, start=1):
        try:
            schedule.append(parse_duration(item))
        except ValueError as exc:
            raise ValueError(f"retry schedule item {position}: {exc}") from None
    return tuple(schedule)


def max_attempts(schedule: Sequence[float]) -> int:
    """How many attempts a delivery gets: the immediate one plus one per scheduled delay."""
    return len(schedule) + 1


def next_attempt_delay(
    schedule: Sequence[float], attempts_made: int, rng: random.Random | None = None
) -> float | None:
    """Seconds to wait before the next attempt, after ``attempts_made`` failed ones; None when done.

    The base delay is ``schedule[attempts_made - 1]``, jittered to 0.8–1.2 × base. ``rng`` makes
    it reproducible in tests; None uses the ``random`` module (jitter is not a secret).
    """
    if attempts_made < 1:
        raise ValueError(f"attempts_made must be at least 1, got {attempts_made}")
    if attempts_made > len(schedule):
        return None
    base = schedule[attempts_made - 1]
    uniform = (rng or random).uniform
    return base * uniform(1 - JITTER, 1 + JITTER)


def format_duration(seconds: float) -> str:
    """A short human form for docs and logs: ``10 s``, ``5 min``, ``3 d 3 h 36 min 10 s``."""
    remaining = round(seconds)
    if remaining == 0:
        return f"{seconds:g} s"
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count} {unit}")
    return " ".join(parts)
