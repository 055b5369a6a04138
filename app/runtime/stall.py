"""Telling a stalled partition from a busy or idle one (agents/stall_watchdog.py acts on it)."""

from __future__ import annotations

from typing import Any


class StallTracker:
    """Remembers, per partition, since when nothing moved while messages were waiting."""

    def __init__(self, stall_seconds: float, hole_seconds: float | None = None) -> None:
        self.stall_seconds = stall_seconds
        # A hole never closes by itself (app/runtime/commit_guard.py): it may be sought back sooner.
        self.hole_seconds = stall_seconds if hole_seconds is None else hole_seconds
        self._since: dict[Any, tuple[Any, float]] = {}

    def reset(self) -> None:
        self._since.clear()

    def stalled(
        self,
        tp: Any,
        *,
        read: Any,
        committed: int | None,
        end: int,
        now: float,
        hole: bool = False,
    ) -> bool:
        """Whether ``tp`` should be sought back: messages wait and nothing moved for too long.

        ``read`` is Faust's read offset, ``committed`` its committed offset (the next to
        process), ``end`` the broker's end offset (one past the last message). ``hole``: the
        message at the committed offset was skipped while later ones were acknowledged; then only
        the committed offset counts as progress, and ``hole_seconds`` is too long.
        """
        if end <= (committed or 0):
            self._since.pop(tp, None)  # everything there is was processed and committed
            return False
        progress = (read, committed)
        seen, since = self._since.get(tp, (progress, now))
        if seen != progress:
            since = now
        if now - since < (self.hole_seconds if hole else self.stall_seconds):
            self._since[tp] = (progress, since)
            return False
        self._since.pop(tp, None)  # sought now: count afresh
        return True
