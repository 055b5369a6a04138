"""Domain events: what an aggregate decided, in the past tense, in one envelope.

Every event is a frozen pydantic model with the envelope from DESIGN.md (``event_id``,
``event_type``, ``schema_version``, ``aggregate_type``, ``aggregate_id``, ``aggregate_version``,
``merchant_id``, ``occurred_at``, ``data``) plus ``causation_id``: the id of the command that
caused it. Amounts are micro-USDT ``int`` in Python and canonical decimal strings in JSON.

``event_id`` is derived, never random (see ``event_id_for``), so a command that is handled twice
(redelivery after a crash) yields the very same events, ids included, and consumers deduplicate
on ``event_id``.

To read any event from the wire use ``parse_event``; it picks the class by ``event_type``.

**One registry.** An event type is spelled once: its class name. Subclassing a family
(``InvoiceEvent``, ``PaymentEvent``, …) registers the class in ``EVENT_TYPES`` under its name and
fixes its ``event_type`` to that name; a family fixes ``aggregate_type`` from its ``AGGREGATE``.
``parse_event``, the JSON Schemas (app/contract/schemas.py) and every list of event types are
derived from that registry, so a new event needs nothing but its class.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Final, Literal, Self, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from app.domain.fees import FeePercentage, TolerancePercentage
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
from app.domain.observations import TransferObserved
from app.domain.statuses import InvoiceStatus, PaymentException

# Fixed forever: changing it changes every event id and breaks deduplication downstream.
EVENT_NAMESPACE: Final = uuid.UUID("6f1c1f5e-3c1a-5d0e-9a47-2f7f3c8b9e10")

SCHEMA_VERSION: Final = 1

# Event type → class, filled as the classes below are defined (``DomainEvent.__init_subclass__``).
_REGISTRY: dict[str, type[DomainEvent]] = {}


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


def added_later(*names: str) -> Callable[[dict[str, Any]], None]:
    """A ``json_schema_extra`` keeping fields added after their event was first published out of
    the schema's ``required``: events already in the log lack them (docs/events.md,
    "Compatibility"). They are still always written from now on."""

    def keep_optional(schema: dict[str, Any]) -> None:
        required = [name for name in schema.get("required", ()) if name not in names]
        schema["required"] = required

    return keep_optional


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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Runs before pydantic collects the fields, so the Literal annotations set here are what
        # it validates and what the JSON Schemas publish (``const``). A class naming its own
        # AGGREGATE is a family; any other subclass is an event type, named by its class.
        super().__init_subclass__(**kwargs)
        annotations = inspect.get_annotations(cls)  # this class's own, a new dict
        if "AGGREGATE" in cls.__dict__:
            annotations["aggregate_type"] = Literal[cls.AGGREGATE]
            cls.aggregate_type = cls.AGGREGATE
        else:
            if cls.__name__ in _REGISTRY:
                raise TypeError(f"event type {cls.__name__} is defined twice")
            cls.TYPE = cls.__name__
            annotations["event_type"] = Literal[cls.__name__]
            cls.event_type = cls.__name__
            _REGISTRY[cls.__name__] = cls
        cls.__annotations__ = annotations

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
    model_config = ConfigDict(
        json_schema_extra=added_later("redirect_url", "cancel_url", "underpaid_tolerance")
    )

    amount: PositiveUsdt
    currency: Literal["USDT"] = "USDT"
    deposit_address: TronAddress
    required_confirmations: int = Field(ge=1)
    fee_percentage: FeePercentage
    expires_at: UtcDatetime
    order_id: str | None = None
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    # Where the payment page sends the customer back to the shop ({invoice_id}, {order_id}
    # placeholders kept as given): after paying, and after expiry or cancellation.
    redirect_url: str | None = None
    cancel_url: str | None = None
    # The merchant's tolerance, fixed on the invoice: at expiry an underpayment of at least this
    # percent of the amount, all confirmed, is accepted (InvoiceResolved, by "tolerance").
    underpaid_tolerance: TolerancePercentage | None = None


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
    model_config = ConfigDict(json_schema_extra=added_later("was_confirmed", "reversed_round"))

    payment_id: Identifier
    payment_amount: PositiveUsdt
    reason: Literal["orphaned", "failed"]
    was_confirmed: bool = Field(
        default=False, description="a confirmed payment, reorganised away (a deep reorg)"
    )
    reversed_round: int | None = Field(
        default=None,
        ge=1,
        description="the invoice was paid: its settlement of this round is reversed",
    )


class InvoicePaidData(InvoiceProgress):
    model_config = ConfigDict(json_schema_extra=added_later("settlement_round", "settled_amount"))

    fee_percentage: FeePercentage
    settlement_round: int = Field(
        default=1,
        ge=1,
        description="1, or more when the invoice is paid again after a reorg reversed its "
        "settlement: each round settles once",
    )
    settled_amount: Usdt | None = Field(
        default=None,
        description="the gross this round settles: the payments confirmed before the invoice "
        "was paid (absent in events written before it existed: amount_confirmed)",
    )


class InvoiceCancelledData(InvoiceProgress):
    reason: str | None = None


class InvoiceResolvedData(InvoiceProgress):
    action: Literal["accept", "refund", "extend"]
    resolved_by: Literal["merchant", "tolerance"]
    expires_at: UtcDatetime | None = Field(default=None, description="extend: the new deadline")
    refund_id: Identifier | None = Field(default=None, description="refund: the refund sent")
    refund_address: TronAddress | None = None
    refund_amount: Usdt | None = Field(default=None, description="refund: everything received")


class InvoiceEvent(DomainEvent):
    """An event of an invoice (``aggregate_id`` is the invoice id)."""

    AGGREGATE = "invoice"


class InvoiceCreated(InvoiceEvent):
    """A merchant created an invoice; it waits for payment at its deposit address."""

    data: InvoiceCreatedData


class InvoicePaymentDetected(InvoiceEvent):
    """A payment to the invoice's deposit address was seen on chain (not yet confirmed)."""

    data: InvoicePaymentData


class InvoicePaymentConfirmed(InvoiceEvent):
    """A payment to the invoice reached its required confirmations."""

    data: InvoicePaymentData


class InvoicePaymentReverted(InvoiceEvent):
    """A payment no longer counts: its block was reorganised away, or it failed."""

    data: InvoicePaymentRevertedData


class InvoicePaid(InvoiceEvent):
    """Confirmed payments cover the invoice; settle ``amount_confirmed`` at ``fee_percentage``."""

    data: InvoicePaidData


class InvoiceExpired(InvoiceEvent):
    """The invoice reached ``expires_at`` without being covered; later payments are paid_late."""

    data: InvoiceProgress


class InvoiceCancelled(InvoiceEvent):
    """The merchant cancelled the invoice before any payment was seen."""

    data: InvoiceCancelledData


class InvoiceResolved(InvoiceEvent):
    """An underpaid invoice was resolved: ``accept`` (InvoicePaid follows: settled on what was
    received), ``refund`` (everything received goes back; the refund's own events follow), or
    ``extend`` (open again until ``expires_at`` for the rest)."""

    data: InvoiceResolvedData


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
    model_config = ConfigDict(json_schema_extra=added_later("was_confirmed"))

    invoice_id: Identifier
    amount: PositiveUsdt
    block_number: BlockNumber
    block_id: BlockId = Field(description="the block that was reorganised away")
    was_confirmed: bool = Field(
        default=False, description="it had been confirmed: a reorg deeper than its confirmations"
    )


class PaymentFailedData(EventData):
    invoice_id: Identifier
    amount: PositiveUsdt
    reason: str


class PaymentEvent(DomainEvent):
    """An event of a payment (``aggregate_id`` is ``<tx hash>:<log index>``)."""

    AGGREGATE = "payment"


class PaymentDetected(PaymentEvent):
    """A transfer to a deposit address was found in a block (again, after a reorg)."""

    data: PaymentDetectedData


class PaymentConfirmationsUpdated(PaymentEvent):
    """More blocks now follow the payment's block; it is confirming."""

    data: PaymentConfirmationsData


class PaymentConfirmed(PaymentEvent):
    """The payment reached its required confirmations; it counts, for good."""

    data: PaymentConfirmationsData


class PaymentOrphaned(PaymentEvent):
    """The payment's block was replaced by a reorganisation; it counts no more until re-detected."""

    data: PaymentOrphanedData


class PaymentFailed(PaymentEvent):
    """The payment will never count."""

    data: PaymentFailedData


# --- transfer: received money that pays no invoice -----------------------------------------------

# The envelope's merchant_id of a transfer no merchant is known for: the platform holds the money
# (merchant ids are ``mer_…``, so no merchant is ever called this).
PLATFORM_MERCHANT_ID: Final = "platform"

UnmatchedReason = Literal["not_a_deposit_address", "after_monitoring_window"]


class UnmatchedTransferReceivedData(EventData):
    tx_hash: TxHash
    log_index: int = Field(ge=0)
    block_number: BlockNumber
    block_id: BlockId
    block_timestamp: UtcDatetime
    from_address: TronAddress
    to_address: TronAddress = Field(description="the platform's deposit address it reached")
    amount: PositiveUsdt
    reason: UnmatchedReason = Field(
        description="not_a_deposit_address: no invoice is registered for the address; "
        "after_monitoring_window: it came after its invoice stopped being watched"
    )
    invoice_id: Identifier | None = Field(
        default=None, description="the address's invoice, when known (after_monitoring_window)"
    )
    merchant_id: Identifier | None = Field(
        default=None, description="that invoice's merchant, when known"
    )


class TransferEvent(DomainEvent):
    """An event of a transfer that paid no invoice (``aggregate_id`` is ``<tx hash>:<log index>``,
    as the payment it did not become)."""

    AGGREGATE = "transfer"


class UnmatchedTransferReceived(TransferEvent):
    """USDT reached one of the platform's deposit addresses and paid no invoice; the money is on
    the platform's address until an operator refunds or credits it (docs/operations.md)."""

    data: UnmatchedTransferReceivedData

    @classmethod
    def of(
        cls,
        transfer: TransferObserved,
        reason: UnmatchedReason,
        *,
        invoice_id: str | None = None,
        merchant_id: str | None = None,
    ) -> Self:
        """The event of ``transfer``, its id derived from the transfer alone.

        Not from its block: the transfer is one aggregate at version 1 whatever block holds it,
        so a transfer redelivered, rescanned or included again after a reorg is the same event
        (the first observation's block and reason are the ones kept).
        """
        return cls.record(
            aggregate_id=transfer.transfer_id,
            aggregate_version=1,
            merchant_id=merchant_id or PLATFORM_MERCHANT_ID,
            causation_id=f"unmatched:{transfer.transfer_id}",
            occurred_at=transfer.block_timestamp,
            data=UnmatchedTransferReceivedData(
                tx_hash=transfer.tx_hash,
                log_index=transfer.log_index,
                block_number=transfer.block_number,
                block_id=transfer.block_id,
                block_timestamp=transfer.block_timestamp,
                from_address=transfer.from_address,
                to_address=transfer.to_address,
                amount=transfer.amount,
                reason=reason,
                invoice_id=invoice_id,
                merchant_id=merchant_id,
            ),
        )


# --- settlement ---------------------------------------------------------------------------------


class SettlementCreatedData(EventData):
    model_config = ConfigDict(json_schema_extra=added_later("settlement_round"))

    invoice_id: Identifier
    gross_amount: PositiveUsdt
    platform_fee_amount: Usdt
    platform_fee_percentage: FeePercentage
    net_amount: Usdt
    settlement_round: int = Field(
        default=1, ge=1, description="the invoice's settlement round (InvoicePaid's)"
    )


class SettlementCompletedData(EventData):
    invoice_id: Identifier
    net_amount: Usdt
    reference: str | None = Field(default=None, description="the payout's reference, if any")


class SettlementFailedData(EventData):
    invoice_id: Identifier
    reason: str


class SettlementReversedData(EventData):
    invoice_id: Identifier
    gross_amount: PositiveUsdt
    platform_fee_amount: Usdt
    net_amount: Usdt
    payment_id: Identifier = Field(description="the confirmed payment reorganised away")
    reason: Literal["payment_orphaned"] = "payment_orphaned"
    reference: str | None = Field(default=None, description="the reversal's ledger reference")


class SettlementEvent(DomainEvent):
    """An event of a settlement (``aggregate_id`` is the settlement id)."""

    AGGREGATE = "settlement"


class SettlementCreated(SettlementEvent):
    """A paid invoice's gross was split into platform fee and merchant net."""

    data: SettlementCreatedData


class SettlementCompleted(SettlementEvent):
    """The net amount reached the merchant."""

    data: SettlementCompletedData


class SettlementFailed(SettlementEvent):
    """The payout did not happen; an operator must look at ``reason``."""

    data: SettlementFailedData


class SettlementReversed(SettlementEvent):
    """A reorg took away a confirmed payment of the settled invoice: the settlement is booked
    back (the merchant's net and the platform's fee returned to the customer funds, by a
    reversal entry, never a deletion). If the transfer is included again the invoice is paid
    again and settles again, in a settlement of the next round."""

    data: SettlementReversedData


# --- refund and payout (money out) ----------------------------------------------------------------


class OutgoingTransferData(EventData):
    amount: PositiveUsdt
    currency: Literal["USDT"] = "USDT"
    address: TronAddress = Field(description="where the USDT goes")


class RefundData(OutgoingTransferData):
    invoice_id: Identifier


class RefundCreatedData(RefundData):
    network_fee_payer: Literal["platform", "merchant"]
    network_fee_charged: Usdt = Field(description="USDT charged to the merchant for the fee")


class OnChainData(EventData):
    tx_hash: TxHash
    block_number: BlockNumber
    network_fee_sun: int = Field(ge=0, description="TRX (sun) the transaction burned")


class RefundConfirmedData(RefundData, OnChainData):
    pass


class RefundFailedData(RefundData):
    reason: str
    tx_hash: TxHash | None = None


class PayoutCreatedData(OutgoingTransferData):
    approval: Literal["automatic", "admin"] = Field(
        description="automatic below the merchant's threshold, else an admin approves"
    )


class PayoutApprovedData(OutgoingTransferData):
    approved_by: str


class PayoutPaidData(OutgoingTransferData, OnChainData):
    pass


class PayoutFailedData(OutgoingTransferData):
    reason: str
    tx_hash: TxHash | None = None


class PayoutCancelledData(OutgoingTransferData):
    pass


class RefundEvent(DomainEvent):
    """An event of a refund (``aggregate_id`` is the refund id)."""

    AGGREGATE = "refund"


class RefundCreated(RefundEvent):
    """A refund was requested and debited from the merchant's balance; it will be sent."""

    data: RefundCreatedData


class RefundConfirmed(RefundEvent):
    """The refund's transfer is final on chain (solidified)."""

    data: RefundConfirmedData


class RefundFailed(RefundEvent):
    """The refund was not sent, or failed on chain; its amount is back in the balance."""

    data: RefundFailedData


class PayoutEvent(DomainEvent):
    """An event of a payout (``aggregate_id`` is the payout id)."""

    AGGREGATE = "payout"


class PayoutCreated(PayoutEvent):
    """A payout was requested and debited from the merchant's balance."""

    data: PayoutCreatedData


class PayoutApproved(PayoutEvent):
    """A platform admin approved a payout above the merchant's automatic threshold."""

    data: PayoutApprovedData


class PayoutPaid(PayoutEvent):
    """The payout's transfer is final on chain (solidified)."""

    data: PayoutPaidData


class PayoutFailed(PayoutEvent):
    """The payout was refused or failed on chain; its amount is back in the balance."""

    data: PayoutFailedData


class PayoutCancelled(PayoutEvent):
    """The payout was cancelled before it was signed; its amount is back in the balance."""

    data: PayoutCancelledData


# --- webhook endpoint ---------------------------------------------------------------------------


class WebhookEndpointDisabledData(EventData):
    url: str
    reason: Literal["failing"] = Field(
        description="failing: every attempt failed for longer than the platform allows"
    )
    failing_since: UtcDatetime
    disabled_at: UtcDatetime


class WebhookEndpointEvent(DomainEvent):
    """An event of a merchant's webhook endpoint (``aggregate_id`` is the endpoint id)."""

    AGGREGATE = "webhook_endpoint"


class WebhookEndpointDisabled(WebhookEndpointEvent):
    """The platform stopped sending to a merchant's webhook endpoint; the merchant must act."""

    data: WebhookEndpointDisabledData


# --- the registry -------------------------------------------------------------------------------

EVENT_TYPES: Final[Mapping[str, type[DomainEvent]]] = _REGISTRY


def _any_event() -> TypeAdapter[DomainEvent]:
    # A union built at run time from the registry: no static type for mypy to check here.
    members = tuple(_REGISTRY.values())
    union = Annotated[Union[members], Field(discriminator="event_type")]  # type: ignore[valid-type]  # noqa: UP007
    return TypeAdapter(union)


_ANY_EVENT: Final[TypeAdapter[DomainEvent]] = _any_event()


def parse_event(raw: str | bytes | Mapping[str, Any]) -> DomainEvent:
    """Any domain event from its JSON text or decoded JSON object, by ``event_type``.

    Raises ``pydantic.ValidationError`` when the payload is not a valid event of a known type.
    """
    if isinstance(raw, str | bytes):
        return _ANY_EVENT.validate_json(raw)
    return _ANY_EVENT.validate_python(raw)
