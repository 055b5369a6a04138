"""Read a stream in batches, acknowledging a batch only after the agent is done with it.

Faust's ``Stream.take_events(max_, within)`` buffers up to ``max_`` events, hands them over when
the buffer is full or ``within`` seconds have passed, and acknowledges them after the agent's
loop body for the batch has finished — so a batch's offsets commit only after what it caused is
durable, as for one event at a time. It waits the whole window when fewer events come, so the
window is the latency a batch adds. (``StreamT``, the type agents are given, does not declare it:
faust-streaming 0.15 has it on ``Stream`` only.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import faust


def batches(stream: faust.StreamT[Any], size: int, within: float) -> AsyncIterator[Sequence[Any]]:
    """The events of ``stream``, ``size`` at most per batch, after ``within`` s at the latest."""
    return cast(faust.Stream[Any], stream).take_events(size, within=within)
