"""When the stall watchdog seeks a partition back: only when messages wait and nothing moves."""

from __future__ import annotations

import pytest

from app.consumer_stall import StallTracker

pytestmark = pytest.mark.unit

TP = ("checkout.deposits", 2)


def test_waiting_messages_with_no_progress_for_too_long_are_a_stall() -> None:
    tracker = StallTracker(20)
    assert not tracker.stalled(TP, read=3, committed=3, end=5, now=0)
    assert not tracker.stalled(TP, read=3, committed=3, end=5, now=19.9)
    assert tracker.stalled(TP, read=3, committed=3, end=5, now=20)
    # Sought: it counts afresh rather than seeking at every check.
    assert not tracker.stalled(TP, read=3, committed=3, end=5, now=25)
    assert tracker.stalled(TP, read=3, committed=3, end=5, now=45)


def test_progress_restarts_the_clock() -> None:
    tracker = StallTracker(20)
    tracker.stalled(TP, read=3, committed=3, end=9, now=0)
    assert not tracker.stalled(TP, read=4, committed=3, end=9, now=15)  # one more delivered
    assert not tracker.stalled(TP, read=4, committed=4, end=9, now=30)  # one more committed
    assert tracker.stalled(TP, read=4, committed=4, end=9, now=50)


def test_a_caught_up_partition_is_never_stalled() -> None:
    tracker = StallTracker(20)
    for now in (0, 30, 60, 90):
        assert not tracker.stalled(TP, read=4, committed=5, end=5, now=now)
    assert not tracker.stalled(TP, read=None, committed=None, end=0, now=100)


def test_reset_forgets_every_partition() -> None:
    tracker = StallTracker(20)
    tracker.stalled(TP, read=3, committed=3, end=5, now=0)
    tracker.reset()
    assert not tracker.stalled(TP, read=3, committed=3, end=5, now=25)
