"""What travels on the topics besides domain events, and how it is written and read.

``checkout.invoice-commands`` carries invoice commands as ``{"type": <class>, "command": {...}}``.
``checkout.deposits`` carries everything that happens at a deposit address, keyed by it, as
``{"kind": ..., ...}``: the registration of a new address by the invoice agent, and the chain
watcher's observations (transfers, their orphaning, chain heads).
``crypto-checkout.notifications`` carries one delivery per message (public: integrators may
read it), its ``channel`` saying which: a webhook delivery (``"webhook"``; older messages have no
channel), or a notice to a merchant user by ``"email"``, ``"telegram"`` or ``"sms"``. Domain
events travel as their own JSON (app/domain/events.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict, TypeAdapter

from app.domain.commands import InvoiceCommand
from app.domain.deposit import DepositRegistration
from app.domain.fields import UtcDatetime
from app.domain.notifications import Channel, Notice, NoticeFacts, NoticeMessage
from app.domain.observations import ChainHeadAdvanced, TransferObserved, TransferOrphaned
from app.domain.webhooks import Notification

# Every member of the domain's InvoiceCommand union, by class name (the envelope's "type").
_INVOICE_COMMANDS: Final[Mapping[str, type[InvoiceCommand]]] = {
    cls.__name__: cls for cls in get_args(InvoiceCommand)
}


class MalformedMessage(ValueError):
    """A message on an internal topic that no agent of this version can read."""


def encode_invoice_command(
    command: InvoiceCommand, reply_to: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The envelope; ``reply_to`` names where a waiting HTTP request wants the answer."""
    envelope: dict[str, Any] = {
        "type": type(command).__name__,
        "command": command.model_dump(mode="json"),
    }
    if reply_to is not None:
        envelope["reply_to"] = dict(reply_to)
    return envelope


def reply_address(message: object) -> dict[str, str] | None:
    if isinstance(message, Mapping) and isinstance(message.get("reply_to"), Mapping):
        return {str(k): str(v) for k, v in message["reply_to"].items()}
    return None


def decode_invoice_command(message: object) -> InvoiceCommand:
    if not isinstance(message, Mapping) or not isinstance(message.get("command"), Mapping):
        raise MalformedMessage(f"not an invoice command envelope: {message!r:.200}")
    command_type = _INVOICE_COMMANDS.get(str(message.get("type")))
    if command_type is None:
        raise MalformedMessage(f"unknown invoice command type {message.get('type')!r}")
    return command_type.model_validate(message["command"])


# --- checkout.deposits ------------------------------------------------------------------------


class DepositRegistered(DepositRegistration):
    """The registration of a deposit address (app/domain/deposit.py) as a deposits message."""

    kind: Literal["deposit_registered"] = "deposit_registered"

    @classmethod
    def of(cls, registration: DepositRegistration) -> DepositRegistered:
        return cls(**registration.model_dump())


class TransferMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["transfer_observed"] = "transfer_observed"
    transfer: TransferObserved


class OrphanMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["transfer_orphaned"] = "transfer_orphaned"
    orphan: TransferOrphaned
    noticed_at: UtcDatetime


class ChainHeadMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["chain_head"] = "chain_head"
    head: ChainHeadAdvanced


DepositMessage = DepositRegistered | TransferMessage | OrphanMessage | ChainHeadMessage

_DEPOSIT_MESSAGE: Final[TypeAdapter[DepositMessage]] = TypeAdapter(DepositMessage)


def encode_deposit_message(message: DepositMessage) -> dict[str, Any]:
    return message.model_dump(mode="json")


def decode_deposit_message(message: object) -> DepositMessage:
    if not isinstance(message, Mapping) or "kind" not in message:
        raise MalformedMessage(f"not a deposit message: {message!r:.200}")
    return _DEPOSIT_MESSAGE.validate_python(message)


# --- crypto-checkout.notifications ---------------------------------------------------------------

WEBHOOK_CHANNEL: Final = "webhook"
# A notice's facts are a flat map of short strings; anything bigger is not ours.
MAX_NOTICE_FACTS: Final = 40
MAX_NOTICE_FACT_LENGTH: Final = 2048
MAX_NOTICE_FACT_NAME: Final = 64


def notification_channel(raw: bytes | str) -> str | None:
    """The channel a message on the notifications topic is for; ``"webhook"`` when it names none
    (and None when it is not a JSON object: whoever decodes it names the problem)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    channel = body.get("channel", WEBHOOK_CHANNEL)
    return channel if isinstance(channel, str) else None


def encode_notice(message: NoticeMessage) -> bytes:
    about = message.about
    return orjson.dumps(
        {
            "channel": str(message.channel),
            "notice_id": message.notice_id,
            "notice": str(about.notice),
            "user_id": message.user_id,
            "merchant_id": about.merchant_id,
            "subject_id": about.subject_id,
            "source_id": about.source_id,
            "occurred_at": about.occurred_at.isoformat(),
            "facts": dict(about.facts),
        }
    )


def decode_notice(raw: bytes | str) -> NoticeMessage:
    """A notice from its JSON; ``MalformedMessage`` names what is wrong with it."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"a notice must be JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedMessage("a notice must be a JSON object")
    try:
        for name in ("notice_id", "user_id", "merchant_id", "subject_id", "source_id"):
            value = body[name]
            if not isinstance(value, str) or not 0 < len(value) <= 200 or "\x00" in value:
                raise MalformedMessage(f"a notice's {name} must be a short string")
        facts = _notice_facts(body["facts"])
        about = NoticeFacts(
            notice=Notice(body["notice"]),
            subject_id=body["subject_id"],
            source_id=body["source_id"],
            merchant_id=body["merchant_id"],
            occurred_at=_NOTICE_TIME.validate_python(body["occurred_at"]),
            facts=facts,
        )
        return NoticeMessage(body["notice_id"], Channel(body["channel"]), body["user_id"], about)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, MalformedMessage):
            raise
        raise MalformedMessage(f"malformed notice: {exc!r:.300}") from None


_NOTICE_TIME: Final[TypeAdapter[Any]] = TypeAdapter(UtcDatetime)


def _notice_facts(facts: object) -> dict[str, str]:
    """The facts, bounded: at most 40 names of 1–64 characters, values short strings, no NUL."""
    if not isinstance(facts, dict) or len(facts) > MAX_NOTICE_FACTS:
        raise MalformedMessage(f"a notice's facts must be an object of at most {MAX_NOTICE_FACTS}")
    for name, value in facts.items():
        if not 0 < len(name) <= MAX_NOTICE_FACT_NAME or "\x00" in name:
            raise MalformedMessage(
                f"a notice's fact names are 1 to {MAX_NOTICE_FACT_NAME} characters, no NUL"
            )
        if not isinstance(value, str) or len(value) > MAX_NOTICE_FACT_LENGTH or "\x00" in value:
            raise MalformedMessage(f"the notice's fact {name[:40]!r} must be a short string")
    return facts


def encode_notification(notification: Notification) -> bytes:
    return orjson.dumps(
        {
            "channel": WEBHOOK_CHANNEL,
            "delivery_id": notification.delivery_id,
            "endpoint_id": notification.endpoint_id,
            "merchant_id": notification.merchant_id,
            "origin": notification.origin,
            "redelivery_of": notification.redelivery_of,
            "event": notification.event,
        }
    )


def decode_notification(raw: bytes | str) -> Notification:
    """A notification from its JSON; ``MalformedMessage`` names what is wrong with it."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"a notification must be JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedMessage("a notification must be a JSON object")
    try:
        event = body["event"]
        for field in ("event_id", "event_type", "aggregate_id"):
            if not isinstance(event.get(field), str):
                raise MalformedMessage(f"notification event has no {field}")
        return Notification(
            delivery_id=str(body["delivery_id"]),
            endpoint_id=str(body["endpoint_id"]),
            merchant_id=str(body["merchant_id"]),
            origin=str(body["origin"]),
            event=event,
            redelivery_of=body.get("redelivery_of"),
        )
    except (KeyError, AttributeError, TypeError) as exc:
        raise MalformedMessage(f"malformed notification: {exc!r}") from None
