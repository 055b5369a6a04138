"""A producer flush returns only when every buffered record is handed on, in order.

Faust commits source offsets right after this flush; a record still buffered then is a table write
the next owner of the partition never restores (app/runtime/producer_flush.py).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.producer import ProducerBuffer

from app.runtime import producer_flush

pytestmark = pytest.mark.component

# Longer than the 0.1 s the unpatched flush waits before giving up.
SLOW_SEND = 0.25


class SlowChannel:
    """Stands in for a topic whose every send takes SLOW_SEND seconds to reach aiokafka."""

    def __init__(self) -> None:
        self.sent: list[int] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        await asyncio.sleep(SLOW_SEND)
        self.sent.append(fut.message.value)


def record(channel: SlowChannel, value: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(channel=channel, value=value))


async def started_buffer() -> ProducerBuffer:
    producer_flush.install()
    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    await buffer.start()
    return buffer


async def test_flush_waits_for_slow_sends_instead_of_giving_up() -> None:
    channel = SlowChannel()
    buffer = await started_buffer()
    try:
        for value in range(4):
            buffer.put(record(channel, value))
        await buffer.flush()
        assert channel.sent == [0, 1, 2, 3]
        assert buffer.size == 0
        assert producer_flush.records_in_hand(buffer) == 0
    finally:
        await buffer.stop()


async def test_the_record_in_hand_counts_until_it_is_sent() -> None:
    channel = SlowChannel()
    buffer = await started_buffer()
    try:
        buffer.put(record(channel, 7))
        await asyncio.sleep(SLOW_SEND / 5)  # the sender has taken it out of the buffer
        assert buffer.size == 0
        assert producer_flush.records_in_hand(buffer) == 1
        await buffer.flush()
        assert channel.sent == [7]
    finally:
        await buffer.stop()


async def test_stopping_sends_what_is_left_in_order_instead_of_dropping_it() -> None:
    channel = SlowChannel()
    buffer = await started_buffer()
    for value in range(5):
        buffer.put(record(channel, value))
    await asyncio.sleep(SLOW_SEND / 5)
    await buffer.stop()  # on_stop flushes while the background sender ends
    assert channel.sent == [0, 1, 2, 3, 4]


async def test_a_record_that_could_not_be_handed_on_fails_every_later_flush() -> None:
    class BrokenChannel:
        async def publish_message(self, fut: Any, wait: bool = False) -> None:
            raise ConnectionError("producer closed")

    buffer = await started_buffer()
    try:
        buffer.put(record(BrokenChannel(), 1))  # type: ignore[arg-type]
        # The record is gone from the buffer, so an empty buffer proves nothing: the flush
        # (and the commit behind it) must fail, and keep failing.
        for _ in range(2):
            with pytest.raises(producer_flush.RecordLost, match="producer closed"):
                await buffer.flush()
    finally:
        with pytest.raises(producer_flush.RecordLost):
            await buffer.stop()
