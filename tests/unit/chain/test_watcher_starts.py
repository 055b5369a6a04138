"""Where a chain watcher without a cursor starts, and the gap a start leaves (pure decisions)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.adapters.tron.starts import (
    MAX_RESCAN_BLOCKS,
    BlockRange,
    PlatformHistory,
    StartMode,
    WatcherStart,
    WatcherTrace,
    gap_before,
    plan_command_start,
    plan_start,
    refusal,
    rescan_commands,
)

pytestmark = pytest.mark.unit

NEW_PLATFORM = PlatformHistory("tron-usdt-mainnet", app_id="shop", network="mainnet")
RENAMED = PlatformHistory(
    "tron-usdt-new",
    app_id="shop",
    network="mainnet",
    traces=(
        WatcherTrace("tron-usdt-mainnet", 1_000, "its cursor"),
        WatcherTrace("tron-usdt-older", 400, "at least: a recorded start"),
    ),
)


def test_a_platform_that_never_watched_starts_at_the_head_by_itself() -> None:
    assert refusal(NEW_PLATFORM, start_height=None) is None
    assert plan_start(NEW_PLATFORM, head=5_000, start_height=None) == WatcherStart(
        5_000, StartMode.FIRST
    )


def test_a_platform_that_watched_before_refuses_and_says_where_to_resume() -> None:
    reason = refusal(RENAMED, start_height=None)

    assert reason is not None
    assert "tron-usdt-new refuses to start at the head" in reason
    assert "tron-usdt-mainnet read up to block 1000 [its cursor]" in reason
    assert "`checkout chain start --at 1001`" in reason
    assert "TRON_WATCHER_NAME" in reason


def test_its_own_lost_cursor_is_enough_to_refuse() -> None:
    lost = PlatformHistory(
        "tron-usdt-mainnet",
        app_id="shop",
        network="mainnet",
        traces=(WatcherTrace("tron-usdt-mainnet", 77, "its kept blocks; its cursor is gone"),),
    )

    reason = refusal(lost, start_height=None)

    assert reason is not None
    assert "--at 78" in reason


def test_an_explicit_start_height_is_obeyed_and_its_gap_reported() -> None:
    assert refusal(RENAMED, start_height=1_500) is None

    start = plan_start(RENAMED, head=5_000, start_height=1_500)

    assert start == WatcherStart(1_500, StartMode.SETTING, 1_000, BlockRange(1_001, 1_499))


def test_a_start_at_or_below_the_previous_cursor_leaves_no_gap() -> None:
    assert plan_command_start(RENAMED, first_block=1_001).gap is None
    assert plan_command_start(RENAMED, first_block=10).gap is None
    assert plan_command_start(NEW_PLATFORM, first_block=5_000).gap is None


def test_a_command_start_past_the_previous_cursor_leaves_the_blocks_in_between() -> None:
    start = plan_command_start(RENAMED, first_block=5_000)

    assert start == WatcherStart(5_000, StartMode.COMMAND, 1_000, BlockRange(1_001, 4_999))
    assert start.gap is not None
    assert start.gap.blocks == 3_999
    assert rescan_commands(start.gap) == ["checkout chain rescan --from 1001 --to 4999"]


@given(
    previous=st.integers(min_value=-1, max_value=2_000),
    first=st.integers(min_value=0, max_value=2_000),
)
def test_the_gap_is_exactly_the_blocks_between(previous: int, first: int) -> None:
    gap = gap_before(first, previous)

    unread = set(range(previous + 1, first))
    assert (set() if gap is None else set(range(gap.first, gap.last + 1))) == unread


@given(
    first=st.integers(min_value=0, max_value=10**8),
    size=st.integers(min_value=1, max_value=5 * MAX_RESCAN_BLOCKS),
)
def test_the_rescans_cover_a_gap_in_pieces_the_rescan_accepts(first: int, size: int) -> None:
    gap = BlockRange(first, first + size - 1)

    pieces = [
        (int(command.split()[4]), int(command.split()[6])) for command in rescan_commands(gap)
    ]

    assert pieces[0][0] == gap.first
    assert pieces[-1][1] == gap.last
    assert all(high - low + 1 <= MAX_RESCAN_BLOCKS for low, high in pieces)
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(pieces))
