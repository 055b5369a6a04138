"""Never commit a partition past an offset that no agent acknowledged.

Faust commits, per partition, the longest run of consecutive acknowledged offsets. faust-streaming
0.15 lets offsets through that no agent ever saw, in two ways; both skipped a transfer for good in
the worker failover test (the payment was never applied, its invoice stayed unpaid).

1. **The hole check is off by one** (``Consumer._new_offset``). The committed offset is the *next*
   offset to process, yet a run is refused only when it starts two or more past it: when exactly
   the message at the committed offset is missing, the run after it is committed.
2. **A jump in delivery counts as acknowledged** (``Consumer._add_gap``). When the fetcher hands
   over offset N while the last offset it handed over was R < N - 1, Faust records R+1 … N as a
   "gap" — offsets it assumes hold no message (transaction markers, compacted records) — and
   ``_new_offset`` counts a gap as acknowledged. (The interval even includes N itself, the message
   being delivered.) After a rebalance such jumps are real skips: Faust resumes flow before it
   seeks to the committed offsets, so a batch fetched before the seek is still delivered after it;
   the read offset then runs ahead, and the skipped messages, fetched again, are dropped as
   already read.

Our source topics are neither transactional nor compacted (app/runtime/topics.py: retention only;
the compacted changelogs are read by Faust's table recovery, which does not acknowledge), so an
offset that was not delivered always holds a message. ``install()`` therefore

- replaces ``_new_offset`` with the same computation and the right check: nothing commits while
  the committed offset itself is unacknowledged;
- replaces ``_add_gap``: a jump is logged and nothing is counted as acknowledged.

Either way the partition's committed offset stays at the first message no agent acknowledged.
The stall watchdog (agents/stall_watchdog.py) sees that hole — the committed offset does not move
while later offsets are acknowledged — and seeks the partition back to it, so the missing messages
are delivered again; handlers are idempotent.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.transport.consumer import Consumer
from faust.types import TP
from faust.utils.functional import consecutive_numbers
from prometheus_client import Counter

logger = logging.getLogger(__name__)

# Faust's own versions, kept for tests that show what they do (tests/component/runtime/).
FAUST_NEW_OFFSET = Consumer._new_offset
FAUST_ADD_GAP = Consumer._add_gap

SKIPPED_DELIVERIES = Counter(
    "checkout_consumer_skipped_offsets",
    "Offsets Faust's fetcher jumped over: left unacknowledged, delivered again after a seek",
    ["topic"],
)


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
    acked.sort()
    committed = self._committed_offset[tp]
    if committed is not None and acked[0] > committed:
        return None  # the message at the committed offset was not acknowledged: a hole
    batch = next(consecutive_numbers(acked))
    acked[: len(batch)] = []
    self._acked_index[tp].difference_update(batch)
    return int(batch[-1]) + 1


async def _add_gap(self: Any, tp: TP, offset_from: int, offset_to: int) -> None:
    """Faust's fetcher is handing over ``offset_to`` while ``offset_from`` … ``offset_to - 1``
    were never handed over: say so, and let them hold the commit until they are delivered."""
    if offset_from >= offset_to:
        return
    SKIPPED_DELIVERIES.labels(topic=tp.topic).inc(offset_to - offset_from)
    skipped = (
        f"offset {offset_from} was"
        if offset_to - offset_from == 1
        else f"offsets {offset_from} to {offset_to - 1} were"
    )
    logger.warning(
        "%s[%d]: delivery jumped to offset %d; %s not delivered and stays unacknowledged: the "
        "partition commits no further until the stall watchdog seeks back to it",
        tp.topic,
        tp.partition,
        offset_to,
        skipped,
    )


def install() -> None:
    if getattr(Consumer, "_checkout_commit_guard", False):
        return
    for name in ("_new_offset", "_add_gap"):
        if not callable(getattr(Consumer, name, None)):
            raise RuntimeError(
                f"faust Consumer has no {name}: app/runtime/commit_guard.py must be reviewed "
                "for this faust-streaming version"
            )
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    Consumer._add_gap = _add_gap  # type: ignore[method-assign]
    Consumer._checkout_commit_guard = True  # type: ignore[attr-defined]
