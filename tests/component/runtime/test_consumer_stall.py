"""When the stall watchdog seeks a partition back: only when messages wait and nothing moves."""

from __future__ import annotations

import pytest

from app.runtime.stall import StallTracker

pytestmark = pytest.mark.component

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


def test_a_hole_is_sought_back_sooner_than_a_stall() -> None:
    # A skipped message never comes back by itself (app/runtime/commit_guard.py): no point waiting
    # 20 s.
    tracker = StallTracker(20, hole_seconds=5)
    assert not tracker.stalled(TP, read=None, committed=3, end=9, now=0, hole=True)
    assert not tracker.stalled(TP, read=None, committed=3, end=9, now=4.9, hole=True)
    assert tracker.stalled(TP, read=None, committed=3, end=9, now=5, hole=True)
    # Without a hole the same partition waits the full stall time.
    assert not tracker.stalled(TP, read=3, committed=3, end=9, now=10)
    assert not tracker.stalled(TP, read=3, committed=3, end=9, now=29.9)
    assert tracker.stalled(TP, read=3, committed=3, end=9, now=30)


def test_no_progress_while_an_agent_waits_out_a_dependency_is_no_stall() -> None:
    # PostgreSQL down for a minute: the settlement agent retries its event, the partition stands.
    tracker = StallTracker(20)
    tracker.stalled(TP, read=3, committed=3, end=9, now=0)
    for now in (15, 30, 45, 60):
        assert not tracker.stalled(TP, read=3, committed=3, end=9, now=now, waiting=True)
    # The wait is over: a partition that still does not move is a stall 20 s later.
    assert not tracker.stalled(TP, read=3, committed=3, end=9, now=79.9)
    assert tracker.stalled(TP, read=3, committed=3, end=9, now=80)


def test_a_hole_is_repaired_even_while_an_agent_waits() -> None:
    tracker = StallTracker(20, hole_seconds=5)
    tracker.stalled(TP, read=None, committed=3, end=9, now=0, hole=True, waiting=True)
    assert tracker.stalled(TP, read=None, committed=3, end=9, now=5, hole=True, waiting=True)
