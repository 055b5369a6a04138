"""The offset a partition commits: never past a message no agent acknowledged
(app/runtime/commit_guard.py).

Faust keeps, per partition, the committed offset (the next message to process) and the offsets
acknowledged since; the commit moves to one past the run of acknowledged offsets. A fake holding
just that bookkeeping stands in for Faust's consumer.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP as FaustTP
from intervaltree import IntervalTree

from app.runtime import commit_guard
from app.runtime.commit_guard import FAUST_ADD_GAP, FAUST_NEW_OFFSET, _new_offset, committed_hole

pytestmark = pytest.mark.component

TP = FaustTP("checkout.deposits", 11)


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


async def test_offsets_the_fetcher_jumped_over_hold_the_commit() -> None:
    # The second failover defect: offset 3 was processed, then the fetcher handed over 6 (a batch
    # fetched before the rebalance's seek); 4 and 5, fetched again, were dropped as already read.
    commit_guard.install()
    book = Bookkeeping(committed=3, acked=[3])
    await Consumer._add_gap(book, TP, 4, 6)  # Faust's call: (last read + 1, offset delivered)
    book._acked[TP].append(6)
    assert Consumer._new_offset(book, TP) == 4
    book._committed_offset[TP] = 4
    assert committed_hole(book, TP)  # the watchdog seeks back to 4
    assert Consumer._new_offset(book, TP) is None

    book._acked[TP].extend([4, 5])  # delivered again and processed
    assert Consumer._new_offset(book, TP) == 7


async def test_faust_counts_the_jumped_over_offsets_as_acknowledged() -> None:
    # What app/runtime/commit_guard.py replaces: when this fails, a faust-streaming upgrade
    # changed it and the guard must be reviewed. Faust records 4..6 as a "gap" (6 itself
    # included, not yet processed) and commits 7: the transfers at 4 and 5 would be skipped.
    book = Bookkeeping(committed=3, acked=[3])
    await FAUST_ADD_GAP(book, TP, 4, 6)
    book._acked[TP].append(6)
    assert FAUST_NEW_OFFSET(book, TP) == 7


def test_faust_commits_over_the_missing_committed_message() -> None:
    # The other defect app/runtime/commit_guard.py replaces (a canary, like the one above): with
    # the message at the committed offset 3 missing and 4, 5 acknowledged, Faust commits 6.
    book = Bookkeeping(committed=3, acked=[4, 5])
    assert FAUST_NEW_OFFSET(book, TP) == 6


def test_nothing_acknowledged_commits_nothing() -> None:
    book = Bookkeeping(committed=3, acked=[])
    assert not committed_hole(book, TP)
    assert _new_offset(book, TP) is None
