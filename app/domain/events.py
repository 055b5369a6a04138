"""Domain events: what an aggregate decided, in the past tense, in one envelope.

Every event is a frozen pydantic model with the envelope from DESIGN.md (``event_id``,
``event_type``, ``schema_version``, ``aggregate_type``, ``aggregate_id``, ``aggregate_version``,
``merchant_id``, ``occurred_at``, ``data``) plus ``causation_id``: the id of the command that
caused it. Amounts are micro-USDT ``int`` in Python and canonical decimal strings in JSON.

``event_id`` is derived, never random (see ``event_id_for``), so a command that is handled twice
(redelivery after a crash) yields the very same events, ids included, and consumers deduplicate
on ``event_id``.

To read any event from the wire use ``parse_event``; it picks the class by ``event_type``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from app.domain.fees import FeePercentage
from app.domain.fields import (
    BlockId,
    BlockNumber,
    CommandId,
    Confirmations,
    Identifier,
    TronAddress,
    TxHash,
    UtcDatetime,
)
from app.domain.money import PositiveUsdt, Usdt
from app.domain.statuses import InvoiceStatus, PaymentException

# Fixed forever: changing it changes every event id and breaks deduplication downstream.
EVENT_NAMESPACE: Final = uuid.UUID("6f1c1f5e-3c1a-5d0e-9a47-2f7f3c8b9e10")

SCHEMA_VERSION: Final = 1


def event_id_for(
    aggregate_type: str,
    aggregate_id: str,
    aggregate_version: int,
    causation_id: str,
    event_type: str,
) -> uuid.UUID:
    """uuid5 over what makes an event this event: whose it is, where, why, and which kind.

    The same command on the same aggregate state gives the same ids; the version tells apart two
    events a command may yield, and the causation id tells apart two commands.
    """
    name = f"{aggregate_type}:{aggregate_id}|v{aggregate_version}|{causation_id}|{event_type}"
    return uuid.uuid5(EVENT_NAMESPACE, name)


class EventData(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", json_schema_serialization_defaults_required=True
    )


class DomainEvent(BaseModel):
    """The envelope every event shares; subclasses fix ``event_type`` and type ``data``."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", json_schema_serialization_defaults_required=True
    )

    event_id: uuid.UUID
    event_type: str
    schema_version: Literal[1] = SCHEMA_VERSION
    aggregate_type: str
    aggregate_id: Identifier
    aggregate_version: int = Field(ge=1)
    merchant_id: Identifier
    causation_id: CommandId
    occurred_at: UtcDatetime
    data: EventData

    TYPE: ClassVar[str]
    AGGREGATE: ClassVar[str]

    @classmethod
    def record(
        cls,
        *,
        aggregate_id: str,
        aggregate_version: int,
        merchant_id: str,
        causation_id: str,
        occurred_at: Any,
        data: Any,
    ) -> Self:
        """The event with its derived ``event_id``: the only way aggregates create events."""
        return cls(
            event_id=event_id_for(
                cls.AGGREGATE, aggregate_id, aggregate_version, causation_id, cls.TYPE
            ),
            event_type=cls.TYPE,
            aggregate_type=cls.AGGREGATE,
            aggregate_id=aggregate_id,
            aggregate_version=aggregate_version,
            merchant_id=merchant_id,
            causation_id=causation_id,
            occurred_at=occurred_at,
            data=data,
        )


# --- invoice ------------------------------------------------------------------------------------


class InvoiceCreatedData(EventData):
    amount: PositiveUsdt
    currency: Literal["USDT"] = "USDT"
    deposit_address: TronAddress
    required_confirmations: int = Field(ge=1)
    fee_percentage: FeePercentage
    expires_at: UtcDatetime
    order_id: str | None = None
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class InvoiceProgress(EventData):
    """Where an invoice stands after the event: status, exception and all its amounts."""

    status: InvoiceStatus
    payment_exception: PaymentException | None
    amount: PositiveUsdt
    amount_received: Usdt
    amount_confirmed: Usdt
    amount_due: Usdt


class InvoicePaymentData(InvoiceProgress):
    payment_id: Identifier
    payment_amount: PositiveUsdt
    late: bool = Field(description="arrived when the invoice was already expired or cancelled")


class InvoicePaymentRevertedData(InvoiceProgress):
    payment_id: Identifier
    payment_amount: PositiveUsdt
    reason: Literal["orphaned", "failed"]


class InvoicePaidData(InvoiceProgress):
    fee_percentage: FeePercentage


class InvoiceCancelledData(InvoiceProgress):
    reason: str | None = None


class _InvoiceEvent(DomainEvent):
    AGGREGATE = "invoice"
    aggregate_type: Literal["invoice"] = "invoice"


class InvoiceCreated(_InvoiceEvent):
    """A merchant created an invoice; it waits for payment at its deposit address."""

    TYPE = "InvoiceCreated"
    event_type: Literal["InvoiceCreated"] = "InvoiceCreated"
    data: InvoiceCreatedData


class InvoicePaymentDetected(_InvoiceEvent):
    """A payment to the invoice's deposit address was seen on chain (not yet confirmed)."""

    TYPE = "InvoicePaymentDetected"
    event_type: Literal["InvoicePaymentDetected"] = "InvoicePaymentDetected"
    data: InvoicePaymentData


class InvoicePaymentConfirmed(_InvoiceEvent):
    """A payment to the invoice reached its required confirmations."""

    TYPE = "InvoicePaymentConfirmed"
    event_type: Literal["InvoicePaymentConfirmed"] = "InvoicePaymentConfirmed"
    data: InvoicePaymentData


class InvoicePaymentReverted(_InvoiceEvent):
    """A payment no longer counts: its block was reorganised away, or it failed."""

    TYPE = "InvoicePaymentReverted"
    event_type: Literal["InvoicePaymentReverted"] = "InvoicePaymentReverted"
    data: InvoicePaymentRevertedData


class InvoicePaid(_InvoiceEvent):
    """Confirmed payments cover the invoice; settle ``amount_confirmed`` at ``fee_percentage``."""

    TYPE = "InvoicePaid"
    event_type: Literal["InvoicePaid"] = "InvoicePaid"
    data: InvoicePaidData


class InvoiceExpired(_InvoiceEvent):
    """The invoice reached ``expires_at`` without being covered; later payments are paid_late."""

    TYPE = "InvoiceExpired"
    event_type: Literal["InvoiceExpired"] = "InvoiceExpired"
    data: InvoiceProgress


class InvoiceCancelled(_InvoiceEvent):
    """The merchant cancelled the invoice before any payment was seen."""

    TYPE = "InvoiceCancelled"
    event_type: Literal["InvoiceCancelled"] = "InvoiceCancelled"
    data: InvoiceCancelledData


# --- payment ------------------------------------------------------------------------------------


class PaymentDetectedData(EventData):
    invoice_id: Identifier
    deposit_address: TronAddress
    from_address: TronAddress
    tx_hash: TxHash
    log_index: int = Field(ge=0)
    amount: PositiveUsdt
    block_number: BlockNumber
    block_id: BlockId
    block_timestamp: UtcDatetime
    required_confirmations: int = Field(ge=1)


class PaymentConfirmationsData(EventData):
    invoice_id: Identifier
    amount: PositiveUsdt
    confirmations: Confirmations
    required_confirmations: int = Field(ge=1)
    head_number: BlockNumber


class PaymentOrphanedData(EventData):
    invoice_id: Identifier
    amount: PositiveUsdt
    block_number: BlockNumber
    block_id: BlockId = Field(description="the block that was reorganised away")


class PaymentFailedData(EventData):
    invoice_id: Identifier
    amount: PositiveUsdt
    reason: str


class _PaymentEvent(DomainEvent):
    AGGREGATE = "payment"
    aggregate_type: Literal["payment"] = "payment"


class PaymentDetected(_PaymentEvent):
    """A transfer to a deposit address was found in a block (again, after a reorg)."""

    TYPE = "PaymentDetected"
    event_type: Literal["PaymentDetected"] = "PaymentDetected"
    data: PaymentDetectedData


class PaymentConfirmationsUpdated(_PaymentEvent):
    """More blocks now follow the payment's block; it is confirming."""

    TYPE = "PaymentConfirmationsUpdated"
    event_type: Literal["PaymentConfirmationsUpdated"] = "PaymentConfirmationsUpdated"
    data: PaymentConfirmationsData


class PaymentConfirmed(_PaymentEvent):
    """The payment reached its required confirmations; it counts, for good."""

    TYPE = "PaymentConfirmed"
    event_type: Literal["PaymentConfirmed"] = "PaymentConfirmed"
    data: PaymentConfirmationsData


class PaymentOrphaned(_PaymentEvent):
    """The payment's block was replaced by a reorganisation; it counts no more until re-detected."""

    TYPE = "PaymentOrphaned"
    event_type: Literal["PaymentOrphaned"] = "PaymentOrphaned"
    data: PaymentOrphanedData


class PaymentFailed(_PaymentEvent):
    """The payment will never count."""

    TYPE = "PaymentFailed"
    event_type: Literal["PaymentFailed"] = "PaymentFailed"
    data: PaymentFailedData


# --- settlement ---------------------------------------------------------------------------------


class SettlementCreatedData(EventData):
    invoice_id: Identifier
    gross_amount: PositiveUsdt
    platform_fee_amount: Usdt
    platform_fee_percentage: FeePercentage
    net_amount: Usdt


class SettlementCompletedData(EventData):
    invoice_id: Identifier
    net_amount: Usdt
    reference: str | None = Field(default=None, description="the payout's reference, if any")


class SettlementFailedData(EventData):
    invoice_id: Identifier
    reason: str


class _SettlementEvent(DomainEvent):
    AGGREGATE = "settlement"
    aggregate_type: Literal["settlement"] = "settlement"


class SettlementCreated(_SettlementEvent):
    """A paid invoice's gross was split into platform fee and merchant net."""

    TYPE = "SettlementCreated"
    event_type: Literal["SettlementCreated"] = "SettlementCreated"
    data: SettlementCreatedData


class SettlementCompleted(_SettlementEvent):
    """The net amount reached the merchant."""

    TYPE = "SettlementCompleted"
    event_type: Literal["SettlementCompleted"] = "SettlementCompleted"
    data: SettlementCompletedData


class SettlementFailed(_SettlementEvent):
    """The payout did not happen; an operator must look at ``reason``."""

    TYPE = "SettlementFailed"
    event_type: Literal["SettlementFailed"] = "SettlementFailed"
    data: SettlementFailedData


# --- webhook endpoint ---------------------------------------------------------------------------


class WebhookEndpointDisabledData(EventData):
    url: str
    reason: Literal["failing"] = Field(
        description="failing: every attempt failed for longer than the platform allows"
    )
    failing_since: UtcDatetime
    disabled_at: UtcDatetime


class WebhookEndpointDisabled(DomainEvent):
    """The platform stopped sending to a merchant's webhook endpoint; the merchant must act."""

    TYPE = "WebhookEndpointDisabled"
    AGGREGATE = "webhook_endpoint"
    aggregate_type: Literal["webhook_endpoint"] = "webhook_endpoint"
    event_type: Literal["WebhookEndpointDisabled"] = "WebhookEndpointDisabled"
    data: WebhookEndpointDisabledData


# --- families and parsing -----------------------------------------------------------------------

InvoiceEvent = Annotated[
    InvoiceCreated
    | InvoicePaymentDetected
    | InvoicePaymentConfirmed
    | InvoicePaymentReverted
    | InvoicePaid
    | InvoiceExpired
    | InvoiceCancelled,
    Field(discriminator="event_type"),
]
PaymentEvent = Annotated[
    PaymentDetected
    | PaymentConfirmationsUpdated
    | PaymentConfirmed
    | PaymentOrphaned
    | PaymentFailed,
    Field(discriminator="event_type"),
]
SettlementEvent = Annotated[
    SettlementCreated | SettlementCompleted | SettlementFailed,
    Field(discriminator="event_type"),
]
AnyEvent = Annotated[
    InvoiceCreated
    | InvoicePaymentDetected
    | InvoicePaymentConfirmed
    | InvoicePaymentReverted
    | InvoicePaid
    | InvoiceExpired
    | InvoiceCancelled
    | PaymentDetected
    | PaymentConfirmationsUpdated
    | PaymentConfirmed
    | PaymentOrphaned
    | PaymentFailed
    | SettlementCreated
    | SettlementCompleted
    | SettlementFailed
    | WebhookEndpointDisabled,
    Field(discriminator="event_type"),
]

EVENT_TYPES: Final[Mapping[str, type[DomainEvent]]] = {
    cls.TYPE: cls
    for cls in (
        InvoiceCreated,
        InvoicePaymentDetected,
        InvoicePaymentConfirmed,
        InvoicePaymentReverted,
        InvoicePaid,
        InvoiceExpired,
        InvoiceCancelled,
        PaymentDetected,
        PaymentConfirmationsUpdated,
        PaymentConfirmed,
        PaymentOrphaned,
        PaymentFailed,
        SettlementCreated,
        SettlementCompleted,
        SettlementFailed,
        WebhookEndpointDisabled,
    )
}

_ANY_EVENT: Final[TypeAdapter[AnyEvent]] = TypeAdapter(AnyEvent)


def parse_event(raw: str | bytes | Mapping[str, Any]) -> DomainEvent:
    """Any domain event from its JSON text or decoded JSON object, by ``event_type``.

    Raises ``pydantic.ValidationError`` when the payload is not a valid event of a known type.
    """
    if isinstance(raw, str | bytes):
        return _ANY_EVENT.validate_json(raw)
    return _ANY_EVENT.validate_python(raw)
