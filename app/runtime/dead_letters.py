"""Dead letters: a message an agent could not process goes to ``<topic>.dlq`` with its error.

Faust acks a message whose agent raised, so an exception that escaped would lose the message.
Each agent therefore catches per message and hands it to ``DeadLetters``: the original key,
value and headers travel unchanged (base64 when not UTF-8), with the error, the agent and where
the message came from, so an operator can inspect it and replay it onto its topic once the cause
is fixed (``checkout dlq``, app/runtime/dead_letter_commands.py).
Every dead letter is counted in ``checkout_dead_letters_total``.
"""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True, kw_only=True)
class DeadLetter:
    """A message an agent could not process, with where it came from and why."""

    agent: str
    error: BaseException
    key: bytes | str | None
    value: bytes | str | None
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    # The message's Kafka headers (a trace context, a replay marker), replayed with it.
    headers: tuple[tuple[str, bytes], ...] = ()

    def record(self) -> dict[str, Any]:
        """The JSON object on ``<topic>.dlq`` (docs/events.md, "Dead letters")."""
        error = self.error
        return {
            "agent": self.agent,
            "failed_at": datetime.now(UTC).isoformat(),
            "error_type": type(error).__name__,
            "error_code": getattr(error, "code", None),
            "error": str(error),
            "traceback": "".join(traceback.format_exception(error))[-4000:],
            "source": {
                "topic": self.source_topic,
                "partition": self.partition,
                "offset": self.offset,
            },
            "key": _text_or_base64(self.key),
            "value": _text_or_base64(self.value),
            "headers": [[name, _text_or_base64(value)] for name, value in self.headers],
        }


def message_headers(headers: object) -> tuple[tuple[str, bytes], ...]:
    """A Kafka message's headers as pairs, whether Faust gives a list of pairs or a mapping."""
    pairs: Any = headers.items() if isinstance(headers, Mapping) else (headers or ())
    return tuple(
        (str(name), value if isinstance(value, bytes) else str(value).encode())
        for name, value in pairs
    )


DeadLetterTopic = Callable[[str], "faust.TopicT"]


class DeadLetters:
    """The one dead-letter helper of every agent: ``<topic>.dlq`` gets the message and its error.

    A message is dead-lettered only once the worker is not stopping (an error against closed
    tables says nothing about the message; app/runtime/shutdown.py), and the send waits out a
    broker outage: nothing is dropped. Every dead letter is logged and counted.
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
        await self.send_letter(
            DeadLetter(
                agent=agent,
                error=error,
                key=message.key,
                value=message.value,
                source_topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                headers=message_headers(message.headers),
            )
        )

    async def send_letter(self, letter: DeadLetter) -> None:
        """Dead-letter anything, also what did not come from a stream (a failed webhook)."""
        dlq = self._dead_letter_of(letter.source_topic)
        error = letter.error
        DEAD_LETTERS.labels(
            agent=letter.agent, topic=letter.source_topic, error=type(error).__name__
        ).inc()
        logger.error(
            "%s: message from %s[%s]@%s sent to %s: %s: %s",
            letter.agent,
            letter.source_topic,
            letter.partition,
            letter.offset,
            dlq.get_topic_name(),
            type(error).__name__,
            error,
        )
        key = letter.key.encode() if isinstance(letter.key, str) else letter.key
        value = orjson.dumps(letter.record())

        async def send() -> None:
            delivered = await dlq.send(key=key, value=value)
            await delivered

        await retry_transient(send, what="dead letter")


REPLAY_HEADER = "checkout-replay-of"


class UnreadableLetter(ValueError):
    """A record on a dead-letter topic that is not a dead letter of ours."""


@dataclass(frozen=True, kw_only=True)
class StoredLetter:
    """A dead letter as read back from ``<topic>.dlq``: where it is, why, and the message."""

    dlq_topic: str
    partition: int
    offset: int
    agent: str
    failed_at: str
    error_type: str
    error_code: str | None
    error: str
    traceback: str
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def letter_id(self) -> str:
        """``<dlq topic>:<partition>:<offset>``: what the operator names it by."""
        return f"{self.dlq_topic}:{self.partition}:{self.offset}"

    def replay_headers(self) -> list[tuple[str, bytes]]:
        """The original headers (an earlier replay marker dropped) and this replay's marker."""
        kept = [(name, value) for name, value in self.headers if name != REPLAY_HEADER]
        return [*kept, (REPLAY_HEADER, self.letter_id.encode())]


def read_letter(dlq_topic: str, partition: int, offset: int, raw: bytes | None) -> StoredLetter:
    """Parse a dead-letter record (``DeadLetter.record``); ``UnreadableLetter`` if it is not."""
    try:
        body = orjson.loads(raw or b"")
        if not isinstance(body, dict):
            raise TypeError("not a JSON object")
        source = body.get("source") or {}
        return StoredLetter(
            dlq_topic=dlq_topic,
            partition=partition,
            offset=offset,
            agent=str(body["agent"]),
            failed_at=str(body.get("failed_at", "")),
            error_type=str(body.get("error_type", "")),
            error_code=None if body.get("error_code") is None else str(body["error_code"]),
            error=str(body.get("error", "")),
            traceback=str(body.get("traceback", "")),
            source_topic=str(source["topic"]),
            source_partition=source.get("partition"),
            source_offset=source.get("offset"),
            key=_bytes_of(body.get("key")),
            value=_bytes_of(body.get("value")),
            headers=tuple(
                (str(name), _bytes_of(value) or b"") for name, value in body.get("headers") or ()
            ),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UnreadableLetter(
            f"{dlq_topic}:{partition}:{offset} is not a dead letter of this platform ({exc})"
        ) from None


def _bytes_of(encoded: object) -> bytes | None:
    """The inverse of ``_text_or_base64``."""
    if encoded is None:
        return None
    if not isinstance(encoded, dict):
        raise TypeError("a key, value or header must be {'text': …} or {'base64': …}")
    if "text" in encoded:
        return str(encoded["text"]).encode()
    return base64.b64decode(str(encoded["base64"]), validate=True)
