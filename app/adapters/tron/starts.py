"""Where the chain watcher starts when it has no cursor, and the blocks a start leaves unread.

Pure decisions (no I/O), so they can be tested on their own and shared by the watcher, ``checkout
chain start`` and ``checkout chain status``:

- A platform that never watched this network starts at the node's head: its first start is not a
  gap, there were no invoices before it.
- A platform that watched before (a start of any of its watcher names is recorded, see
  ``PlatformHistory``) and has lost this watcher's cursor — a deleted row, a changed
  ``TRON_WATCHER_NAME`` — must not start at the head: every payment made since the previous
  cursor would never be detected. It refuses until an operator says where to start
  (``checkout chain start``) or ``TRON_WATCHER_START_HEIGHT`` does.
- A start past the platform's previous cursor leaves a gap: recorded, logged, and repaired with
  ``checkout chain rescan``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

# What one `checkout chain rescan` reads at most: about four days of Tron blocks.
MAX_RESCAN_BLOCKS: Final = 100_000


class StartMode(StrEnum):
    """Why the watcher started where it did (``chain_watcher_starts.how``)."""

    FIRST = "first"  # the platform's first start on this network: the node's head
    RESUME = "resume"  # from its own cursor
    SETTING = "setting"  # TRON_WATCHER_START_HEIGHT
    COMMAND = "command"  # `checkout chain start --at`
    MIGRATION = "migration"  # a cursor found when migration 0027 began recording starts
    # Anchored again below a reorg deeper than the kept window; the gap holds the blocks read
    # before that can no longer be verified (app/adapters/tron/watcher.py).
    REORG = "reorg"


@dataclass(frozen=True)
class BlockRange:
    """Blocks ``first..last``, both included."""

    first: int
    last: int

    @property
    def blocks(self) -> int:
        return self.last - self.first + 1

    def __str__(self) -> str:
        return f"{self.first}..{self.last}"


@dataclass(frozen=True)
class WatcherStart:
    """One start: the first block the watcher reads, and what it left unread below it."""

    first_block: int
    mode: StartMode
    previous_block: int | None = None
    gap: BlockRange | None = None


@dataclass(frozen=True)
class WatcherTrace:
    """How far one watcher name of the platform is known to have read: ``last_block`` at least."""

    watcher_name: str
    last_block: int
    evidence: str  # "its cursor", "its kept blocks" or "at least: a recorded start"


@dataclass(frozen=True)
class PlatformHistory:
    """What one platform (CHECKOUT_APP_ID) is known to have watched on one network.

    ``traces`` is empty for a platform that never watched there. ``last_block`` is a lower bound
    when only a recorded start is left (a lost cursor with its kept blocks): a gap computed from
    it may include blocks that were read after all, which a rescan reads again harmlessly.
    """

    watcher_name: str
    app_id: str | None = None
    network: str | None = None
    traces: tuple[WatcherTrace, ...] = ()

    @property
    def watched_before(self) -> bool:
        return bool(self.traces)

    @property
    def last_block(self) -> int | None:
        return max((trace.last_block for trace in self.traces), default=None)


def gap_before(first_block: int, previous_block: int | None) -> BlockRange | None:
    """The blocks nobody read between the previous cursor and a start at ``first_block``."""
    if previous_block is None or first_block <= previous_block + 1:
        return None
    return BlockRange(previous_block + 1, first_block - 1)


def rescan_commands(gap: BlockRange) -> list[str]:
    """The ``checkout chain rescan`` commands that read ``gap`` again (at most 100,000 each)."""
    return [
        f"checkout chain rescan --from {low} --to {min(gap.last, low + MAX_RESCAN_BLOCKS - 1)}"
        for low in range(gap.first, gap.last + 1, MAX_RESCAN_BLOCKS)
    ]


def describe_rescan(gap: BlockRange) -> str:
    commands = rescan_commands(gap)
    shown = "`, `".join(commands[:3])
    more = f" and {len(commands) - 3} more of 100,000 blocks" if len(commands) > 3 else ""
    return f"`{shown}`{more}"


def refusal(history: PlatformHistory, *, start_height: int | None) -> str | None:
    """Why the watcher, having no cursor, must not start by itself; None when it may."""
    if start_height is not None or not history.watched_before:
        return None
    previous = history.last_block
    assert previous is not None
    platform = "this platform" if history.app_id is None else f"platform {history.app_id}"
    network = "this network" if history.network is None else f"Tron {history.network}"
    return (
        f"chain watcher {history.watcher_name} refuses to start at the head: it has no cursor, "
        f"but {platform} watched {network} before: {_traces(history.traces)}. Starting at the "
        "head would never detect the payments "
        f"made since. If TRON_WATCHER_NAME changed by mistake, set it back. Otherwise run "
        f"`checkout chain start --at {previous + 1}` to read on from there (nothing is "
        "skipped), or `checkout chain start --at head --yes` and the `checkout chain rescan` it "
        "prints for the blocks in between (docs/chain.md, 'Where the watcher starts')"
    )


def plan_start(history: PlatformHistory, *, head: int, start_height: int | None) -> WatcherStart:
    """Where a watcher without a cursor starts by itself (``refusal`` said it may)."""
    if start_height is not None:
        previous = history.last_block
        return WatcherStart(
            start_height, StartMode.SETTING, previous, gap_before(start_height, previous)
        )
    return WatcherStart(head, StartMode.FIRST)


def plan_command_start(history: PlatformHistory, *, first_block: int) -> WatcherStart:
    """``checkout chain start --at first_block``: the start and the gap it would leave."""
    previous = history.last_block
    return WatcherStart(first_block, StartMode.COMMAND, previous, gap_before(first_block, previous))


def _traces(traces: Sequence[WatcherTrace]) -> str:
    ordered = sorted(traces, key=lambda trace: trace.last_block, reverse=True)
    shown = "; ".join(
        f"{trace.watcher_name} read up to block {trace.last_block} [{trace.evidence}]"
        for trace in ordered[:3]
    )
    return shown if len(ordered) <= 3 else f"{shown}; and {len(ordered) - 3} other watcher names"
