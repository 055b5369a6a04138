"""What the stand-in took (the messages, in order), how many requests it saw, and the failures
a test planned for the next sends."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Final

from sms_sim.segments import Segmentation

API_VERSION: Final = "2010-04-01"
# Oldest messages are forgotten past this many, so a long-running stand-in stays small.
MAX_KEPT: Final = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    sid: str
    account_sid: str
    to: str
    from_number: str
    body: str
    segmentation: Segmentation
    created_at: float  # seconds since the epoch


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """The next ``times`` sends wait ``delay`` seconds, then fail with ``status`` if it is set
    (else they go through: a slow Twilio that still takes the message)."""

    status: int | None
    delay: float
    times: int

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "delay": self.delay, "times": self.times}


@dataclass(slots=True)
class Counters:
    requests: int = 0  # every POST to Messages.json, whatever became of it
    accepted: int = 0
    rejected: int = 0  # refused for what it asked (a 400), as Twilio would
    faulted: int = 0  # failed on purpose by a planned fault


@dataclass
class Outbox:
    clock: Callable[[], float]
    messages: dict[str, Message] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)
    fault: Fault | None = None

    def accept(
        self, *, account_sid: str, to: str, from_number: str, body: str, segmentation: Segmentation
    ) -> Message:
        message = Message(
            sid="SM" + secrets.token_hex(16),
            account_sid=account_sid,
            to=to,
            from_number=from_number,
            body=body,
            segmentation=segmentation,
            created_at=self.clock(),
        )
        self.messages[message.sid] = message
        if len(self.messages) > MAX_KEPT:
            del self.messages[next(iter(self.messages))]
        self.counters.accepted += 1
        return message

    def take_fault(self) -> Fault | None:
        """The fault planned for this send, counting it down."""
        fault = self.fault
        if fault is None:
            return None
        remaining = fault.times - 1
        self.fault = Fault(status=fault.status, delay=fault.delay, times=remaining)
        if remaining <= 0:
            self.fault = None
        return fault

    def reset(self) -> None:
        self.messages.clear()
        self.counters = Counters()
        self.fault = None


def message_json(message: Message, *, now: float | None, delivery_delay: float) -> dict[str, Any]:
    """The Message resource as Twilio renders it. ``now=None`` renders it as the create call
    answers (``queued``); otherwise it is ``delivered`` once ``delivery_delay`` has passed."""
    delivered = now is not None and now - message.created_at >= delivery_delay
    created = _rfc2822(message.created_at)
    sent = _rfc2822(message.created_at + delivery_delay) if delivered else None
    uri = f"/{API_VERSION}/Accounts/{message.account_sid}/Messages/{message.sid}"
    return {
        "account_sid": message.account_sid,
        "api_version": API_VERSION,
        "body": message.body,
        "date_created": created,
        "date_sent": sent,
        "date_updated": sent or created,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": message.from_number,
        "messaging_service_sid": None,
        "num_media": "0",
        # Twilio renders both counts as strings.
        "num_segments": str(message.segmentation.segments),
        "price": None,
        "price_unit": "USD",
        "sid": message.sid,
        "status": "delivered" if delivered else "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": message.to,
        "uri": f"{uri}.json",
    }


def _rfc2822(seconds: float) -> str:
    return format_datetime(datetime.fromtimestamp(int(seconds), UTC))
