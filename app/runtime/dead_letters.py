"""Dead letters: a message an agent could not process goes to ``<topic>.dlq`` with its error.

Faust acks a message whose agent raised, so an exception that escaped would lose the message.
Each agent therefore catches per message and hands it to ``DeadLetters``: the original key and
value travel unchanged (base64 when not UTF-8), with the error, the agent and where the message
came from, so an operator can inspect it and replay it onto its topic once the cause is fixed.
Every dead letter is counted in ``checkout_dead_letters_total``.
"""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import Counter

from app.runtime.retry import retry_transient
from app.runtime.shutdown import never_stopping

if TYPE_CHECKING:  # the types only: this module does not need Faust to run
    import faust

logger = logging.getLogger(__name__)

DEAD_LETTERS = Counter(
    "checkout_dead_letters",
    "Messages an agent could not process, sent to a dead-letter topic",
    ["agent", "topic", "error"],
)


def _text_or_base64(raw: bytes | str | None) -> dict[str, str] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return {"text": raw}
    try:
        return {"text": raw.decode()}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode()}


def dead_letter_record(
    *,
    agent: str,
    error: BaseException,
    key: bytes | str | None,
    value: bytes | str | None,
    source_topic: str,
    partition: int | None = None,
    offset: int | None = None,
) -> dict[str, Any]:
    return {
        "agent": agent,
        "failed_at": datetime.now(UTC).isoformat(),
        "error_type": type(error).__name__,
        "error_code": getattr(error, "code", None),
        "error": str(error),
        "traceback": "".join(traceback.format_exception(error))[-4000:],
        "source": {"topic": source_topic, "partition": partition, "offset": offset},
        "key": _text_or_base64(key),
        "value": _text_or_base64(value),
    }


async def send_to_dead_letter(
    dlq: faust.TopicT,
    *,
    agent: str,
    error: BaseException,
    key: bytes | str | None,
    value: bytes | str | None,
    source_topic: str,
    partition: int | None = None,
    offset: int | None = None,
) -> None:
    """Publish the failed message and its error; awaits the broker's ack (nothing lost)."""
    record = dead_letter_record(
        agent=agent,
        error=error,
        key=key,
        value=value,
        source_topic=source_topic,
        partition=partition,
        offset=offset,
    )
    DEAD_LETTERS.labels(agent=agent, topic=source_topic, error=type(error).__name__).inc()
    logger.error(
        "%s: message from %s[%s]@%s sent to %s: %s: %s",
        agent,
        source_topic,
        partition,
        offset,
        dlq.get_topic_name(),
        type(error).__name__,
        error,
    )
    key_bytes = key.encode() if isinstance(key, str) else key
    delivered = await dlq.send(key=key_bytes, value=orjson.dumps(record))
    await delivered


DeadLetterTopic = Callable[[str], "faust.TopicT"]


class DeadLetters:
    """The one dead-letter helper of every agent: ``<topic>.dlq`` gets the message and its error.

    A message is dead-lettered only once the worker is not stopping (an error against closed
    tables says nothing about the message; app/runtime/shutdown.py), and the send waits out a
    broker outage: nothing is dropped.
    """

    def __init__(
        self,
        dead_letter_of: DeadLetterTopic,
        hold: Callable[[], Awaitable[None]] = never_stopping,
    ) -> None:
        self._dead_letter_of = dead_letter_of
        self._hold = hold

    async def send(self, event: faust.EventT, *, agent: str, error: BaseException) -> None:
        """Dead-letter the message behind a stream event."""
        await self._hold()
        message = event.message
        await self.send_record(
            agent=agent,
            error=error,
            key=message.key,
            value=message.value,
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
        )

    async def send_record(
        self,
        *,
        agent: str,
        error: BaseException,
        key: bytes | str | None,
        value: bytes | str | None,
        source_topic: str,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        """Dead-letter what did not come from a stream (a webhook delivery that failed for good)."""
        dlq = self._dead_letter_of(source_topic)
        await retry_transient(
            lambda: send_to_dead_letter(
                dlq,
                agent=agent,
                error=error,
                key=key,
                value=value,
                source_topic=source_topic,
                partition=partition,
                offset=offset,
            ),
            what="dead letter",
        )
