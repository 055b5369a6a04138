"""The offset a partition commits: never past a message no agent acknowledged (app/commit_guard.py).

Faust keeps, per partition, the committed offset (the next message to process) and the offsets
acknowledged since; the commit moves to one past the run of acknowledged offsets. A fake holding
just that bookkeeping stands in for Faust's consumer.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from intervaltree import IntervalTree

from app.commit_guard import _new_offset, committed_hole

pytestmark = pytest.mark.unit

TP = ("checkout.deposits", 11)


class Bookkeeping:
    def __init__(self, committed: int | None, acked: list[int]) -> None:
        self._committed_offset: dict[Any, int | None] = defaultdict(lambda: None)
        if committed is not None:
            self._committed_offset[TP] = committed
        self._acked: dict[Any, list[int]] = defaultdict(list, {TP: list(acked)})
        self._acked_index: dict[Any, set[int]] = defaultdict(set, {TP: set(acked)})
        self._gap: dict[Any, IntervalTree] = defaultdict(IntervalTree)


def test_a_run_from_the_committed_offset_commits_one_past_its_end() -> None:
    book = Bookkeeping(committed=3, acked=[3, 4, 5])
    assert _new_offset(book, TP) == 6
    assert book._acked[TP] == []
    assert book._acked_index[TP] == set()


def test_the_run_stops_at_the_first_unacknowledged_offset() -> None:
    book = Bookkeeping(committed=3, acked=[5, 3, 4, 7])
    assert _new_offset(book, TP) == 6
    assert book._acked[TP] == [7]  # waits for 6


def test_nothing_commits_while_the_committed_message_itself_is_missing() -> None:
    # The failover defect: the transfer at offset 3 never reached the agent, 4 and 5 did.
    # faust-streaming 0.15 committed 6 here and the transfer was skipped for good.
    book = Bookkeeping(committed=3, acked=[4, 5])
    assert committed_hole(book, TP)
    assert _new_offset(book, TP) is None
    assert book._acked[TP] == [4, 5]  # kept until 3 is delivered again and acknowledged

    book._acked[TP].append(3)  # the watchdog sought back; 3 was processed
    assert not committed_hole(book, TP)
    assert _new_offset(book, TP) == 6


def test_a_hole_at_offset_zero_is_a_hole_too() -> None:
    book = Bookkeeping(committed=0, acked=[1, 2])
    assert _new_offset(book, TP) is None


def test_a_partition_never_committed_commits_from_its_first_acknowledged_offset() -> None:
    book = Bookkeeping(committed=None, acked=[0, 1])
    assert not committed_hole(book, TP)
    assert _new_offset(book, TP) == 2


def test_offsets_known_to_hold_no_message_count_as_acknowledged() -> None:
    book = Bookkeeping(committed=3, acked=[3, 6])
    book._gap[TP].addi(4, 6)  # e.g. transaction markers at 4 and 5
    assert _new_offset(book, TP) == 7


def test_nothing_acknowledged_commits_nothing() -> None:
    book = Bookkeeping(committed=3, acked=[])
    assert not committed_hole(book, TP)
    assert _new_offset(book, TP) is None
