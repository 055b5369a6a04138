"""Never commit a partition past an offset that no agent acknowledged.

Faust commits, per partition, the longest run of consecutive acknowledged offsets. It is meant to
stop at a hole — a message delivered but not yet acknowledged, or never delivered — and in
faust-streaming 0.15 (``Consumer._new_offset``) that check is off by one: the committed offset is
the *next* offset to process, yet a run is refused only when it starts two or more past it. When
exactly the message at the committed offset is missing, the run after it is committed and that
message is skipped for good. After a rebalance Faust can drop a fetched message that way (its
fetcher gives up a delivery when flow is suspended, and resumes flow before seeking to the
committed offsets): in the failover test a transfer was then committed without ever reaching the
payment agent, and its invoice stayed unpaid.

``install()`` replaces ``_new_offset`` with the same computation and the right check: nothing
commits while the committed offset itself is unacknowledged. The stall watchdog
(agents/stall_watchdog.py) sees such a hole (the committed offset does not move while later
offsets are acknowledged) and seeks the partition back to it, so the missing message is
delivered again; handlers are idempotent.
"""

from __future__ import annotations

from typing import Any

from faust.transport.consumer import Consumer
from faust.types import TP
from faust.utils.functional import consecutive_numbers


def committed_hole(consumer: Any, tp: TP) -> bool:
    """Whether ``tp`` has acknowledged offsets after its committed one but not that one."""
    committed = consumer._committed_offset.get(tp)
    acked = consumer._acked.get(tp)
    return committed is not None and bool(acked) and min(acked) > committed


def _new_offset(self: Any, tp: TP) -> int | None:
    """The offset to commit for ``tp``: one past the run of acknowledged offsets that starts at
    the committed offset, or ``None`` when that offset is not acknowledged yet."""
    acked: list[int] = self._acked[tp]
    if not acked:
        return None
    max_offset = max(acked)
    gap_for_tp = self._gap[tp]
    if gap_for_tp:
        # Offsets Faust knows hold no message for us (transaction markers, compacted records)
        # count as acknowledged, as in Faust's own version.
        candidates = sorted(gap_for_tp.overlap(0, max_offset), key=lambda entry: entry.begin)
        if candidates:
            filled: list[int] = []
            for entry in candidates:
                filled.extend(range(entry.begin, entry.end))
            acked.extend(filled)
            gap_for_tp.chop(0, max(filled[-1], max_offset + 1))
    acked.sort()
    committed = self._committed_offset[tp]
    if committed is not None and acked[0] > committed:
        return None  # the message at the committed offset was not acknowledged: a hole
    batch = next(consecutive_numbers(acked))
    acked[: len(batch)] = []
    self._acked_index[tp].difference_update(batch)
    return int(batch[-1]) + 1


def install() -> None:
    if getattr(Consumer, "_checkout_commit_guard", False):
        return
    if not callable(getattr(Consumer, "_new_offset", None)):
        raise RuntimeError(
            "faust Consumer has no _new_offset: app/commit_guard.py must be reviewed for this "
            "faust-streaming version"
        )
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    Consumer._checkout_commit_guard = True  # type: ignore[attr-defined]
