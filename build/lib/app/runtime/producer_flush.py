"""Make Faust's producer flush mean "everything buffered is on the broker" before offsets commit.

Table writes are not sent at once: ``table[key] = value`` puts the changelog record in Faust's
``ProducerBuffer`` and a background task hands it to aiokafka. Before committing source offsets
Faust calls ``producer.flush()`` — the promise that a committed message's table writes are in the
changelog, so whoever restores the table next sees them. In faust-streaming 0.15 that promise has
two holes (``faust/transport/producer.py``, ``ProducerBuffer.flush_atmost``):

- it waits only 0.1 s for the next record to leave the buffer, then returns with the rest still
  buffered, so on a busy worker the offsets commit ahead of their changelog records;
- it counts the records *in* the buffer, not the one the background task has taken out and is
  still handing to aiokafka, so that last record can miss aiokafka's own flush as well;

and while the worker stops, the background task is gone, so what is left in the buffer raises
"Cannot flush: Producer not Running" and is dropped.

On a graceful handover that lost deposit registrations: the stopping worker committed the
``checkout.deposits`` offsets, its changelog records never reached Kafka, the survivor restored a
``deposits`` table without the address, and the transfer to it was ignored as "not a deposit
address" — an invoice paid on chain that never became paid.

``install()`` replaces the flush with one that drains completely: it waits (however long) until the
buffer is empty and no record is in hand, and once the background task has stopped it sends the
rest itself, in order. If it cannot send, it raises, so the commit does not happen and the
messages are processed again — never committed without their state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from faust.transport.producer import ProducerBuffer
from faust.types.tuples import FutureMessage

logger = logging.getLogger(__name__)

# How long a flush waits between looks at the buffer, and how often it says it is still waiting.
POLL_SECONDS = 0.5
REPORT_EVERY_SECONDS = 10.0

_IN_HAND = "_checkout_records_in_hand"
_LOST = "_checkout_record_lost"


class RecordLost(RuntimeError):
    """A buffered record could not be handed to aiokafka: nothing may commit after it."""


def records_in_hand(buffer: ProducerBuffer) -> int:
    """Records taken out of the buffer and not yet accepted by aiokafka."""
    return int(getattr(buffer, _IN_HAND, 0))


async def _send_pending(self: ProducerBuffer, fut: FutureMessage) -> None:
    setattr(self, _IN_HAND, records_in_hand(self) + 1)
    try:
        await fut.message.channel.publish_message(fut, wait=False)
    except BaseException as exc:
        if not isinstance(exc, asyncio.CancelledError):
            setattr(self, _LOST, exc)
        raise
    finally:
        setattr(self, _IN_HAND, records_in_hand(self) - 1)


async def flush(self: ProducerBuffer) -> None:
    """Return only when every buffered record has been handed to aiokafka, in order."""
    started = time.monotonic()
    reported = started
    while True:
        _raise_if_lost(self)
        if not (self.size or records_in_hand(self)):
            return
        if self.should_stop and not records_in_hand(self):
            # The background sender ends with the service: send what is left ourselves. One at
            # a time and only with nothing in hand, so a key's records keep their order.
            await _send_pending(self, self.pending.get_nowait())
            continue
        self.message_sent.clear()
        try:
            await asyncio.wait_for(self.message_sent.wait(), timeout=POLL_SECONDS)
        except TimeoutError:
            now = time.monotonic()
            if now - reported >= REPORT_EVERY_SECONDS:
                reported = now
                logger.warning(
                    "producer flush still waiting after %.0f s: %d records buffered, %d in hand",
                    now - started,
                    self.size,
                    records_in_hand(self),
                )


def _raise_if_lost(buffer: ProducerBuffer) -> None:
    lost = getattr(buffer, _LOST, None)
    if lost is not None:
        raise RecordLost(
            f"a buffered record could not be sent ({lost!r}); offsets must not commit past it"
        ) from lost


async def flush_atmost(self: ProducerBuffer, max_messages: int | None) -> int:
    """Faust's back-pressure hook (``wait_until_ebb``): wait until the buffer is drained.

    The original sends at most ``max_messages`` and gives up after 0.1 s; waiting for the whole
    buffer instead keeps a fast producer from growing it without bound.
    """
    before = self.size
    await flush(self)
    return before


def install() -> None:
    """Patch ``ProducerBuffer`` once; refuses a Faust whose buffer no longer looks as expected."""
    if getattr(ProducerBuffer, "_checkout_flush_installed", False):
        return
    for name in ("flush", "flush_atmost", "_send_pending", "_handle_pending", "size"):
        if not hasattr(ProducerBuffer, name):
            raise RuntimeError(
                f"faust ProducerBuffer has no {name!r}: app/runtime/producer_flush.py must be "
                "reviewed for this faust-streaming version"
            )
    patched: dict[str, Any] = {
        "flush": flush,
        "flush_atmost": flush_atmost,
        "_send_pending": _send_pending,
        "_checkout_flush_installed": True,
    }
    for name, value in patched.items():
        setattr(ProducerBuffer, name, value)
