"""Commands: what someone asks an aggregate to do, in the imperative.

Every command carries a ``command_id``. Handling a command whose id the aggregate has already
handled returns the events it yielded then (same ids), so redelivery is harmless. Commands born
from the chain (``DetectPayment.from_transfer`` …) derive their id from the observation, so a
re-observed transfer or chain head is recognised; commands from people (``CreateInvoice``,
``CancelInvoice``) take the caller's idempotency key or request id.

Time is always on the command (``created_at``, ``observed_at`` …): the domain never reads a clock.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.domain.confirmations import check_confirmation_override
from app.domain.errors import InvalidExpiry
from app.domain.fees import DEFAULT_FEE_PERCENTAGE, FeePercentage, TolerancePercentage
from app.domain.fields import (
    BlockId,
    BlockNumber,
    CommandId,
    Identifier,
    OneLineText,
    PlainText,
    TronAddress,
    TxHash,
    UtcDatetime,
    transfer_id,
)
from app.domain.money import PositiveUsdt
from app.domain.observations import ChainHeadAdvanced, TransferObserved, TransferOrphaned

# Fixed forever: settlement ids of existing invoices depend on it.
SETTLEMENT_NAMESPACE: Final = uuid.UUID("0b9e5a8e-7f53-5a55-8c1e-0d7d3f2a6c41")
MAX_METADATA_KEYS: Final = 50
MAX_SHOP_URL: Final = 2048  # redirect_url, cancel_url

MetadataKey = Annotated[OneLineText, StringConstraints(min_length=1, max_length=40)]
MetadataValue = Annotated[PlainText, StringConstraints(max_length=500)]


def settlement_id_for(invoice_id: str, settlement_round: int = 1) -> str:
    """An invoice's settlement of a round has an id derived from both, so it is created once.

    Round 1 is the invoice's settlement; a later round exists only when a reorg reversed the
    previous one and the invoice was paid again (its ids keep the original form for round 1).
    """
    name = invoice_id if settlement_round == 1 else f"{invoice_id}#round-{settlement_round}"
    return f"set_{uuid.uuid5(SETTLEMENT_NAMESPACE, name).hex}"


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: CommandId


# --- invoice ------------------------------------------------------------------------------------


class CreateInvoice(Command):
    invoice_id: Identifier
    merchant_id: Identifier
    amount: PositiveUsdt
    deposit_address: TronAddress
    fee_percentage: FeePercentage = DEFAULT_FEE_PERCENTAGE
    confirmation_override: int | None = Field(
        default=None, description="the merchant's required confirmations, replacing the default"
    )
    created_at: UtcDatetime
    expires_at: UtcDatetime
    order_id: OneLineText | None = Field(default=None, max_length=200)
    description: PlainText | None = Field(default=None, max_length=1000)
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict, max_length=MAX_METADATA_KEYS
    )
    redirect_url: OneLineText | None = Field(default=None, max_length=MAX_SHOP_URL)
    cancel_url: OneLineText | None = Field(default=None, max_length=MAX_SHOP_URL)
    # The merchant's: at expiry, accept an underpayment of at least this percent of the amount.
    underpaid_tolerance: TolerancePercentage | None = None

    @field_validator("confirmation_override")
    @classmethod
    def _override_in_range(cls, override: int | None) -> int | None:
        if override is None:
            return None
        return check_confirmation_override(override, field="confirmation_override")

    @model_validator(mode="after")
    def _expires_after_creation(self) -> Self:
        if self.expires_at <= self.created_at:
            raise InvalidExpiry("expires_at must be after created_at", param="expires_at")
        return self

    @property
    def aggregate_id(self) -> str:
        return self.invoice_id


class CancelInvoice(Command):
    invoice_id: Identifier
    cancelled_at: UtcDatetime
    reason: PlainText | None = Field(default=None, max_length=500)

    @property
    def aggregate_id(self) -> str:
        return self.invoice_id


class ExpireInvoice(Command):
    invoice_id: Identifier
    expired_at: UtcDatetime = Field(description="when expiry was decided; not before expires_at")

    @classmethod
    def at(cls, invoice_id: str, now: datetime, extensions: int = 0, reopenings: int = 0) -> Self:
        """The expiry timer's command; one id per invoice and deadline, however often the timer
        fires (an invoice the merchant extended, or a reorg reopened, can expire again)."""
        command_id = (
            f"expire:{invoice_id}"
            + (f":{extensions}" if extensions else "")
            + (f":reopened-{reopenings}" if reopenings else "")
        )
        return cls(command_id=command_id, invoice_id=invoice_id, expired_at=now)

    @property
    def aggregate_id(self) -> str:
        return self.invoice_id


class ResolveInvoice(Command):
    """A merchant settles what an underpaid invoice becomes (docs/merchant-api.md, "Resolve"):
    ``accept`` what was received, ``refund`` it, or ``extend`` the invoice to a new deadline."""

    invoice_id: Identifier
    action: Literal["accept", "refund", "extend"]
    resolved_at: UtcDatetime
    expires_at: UtcDatetime | None = Field(default=None, description="extend: the new deadline")
    refund_id: Identifier | None = Field(default=None, description="refund: the refund's id")
    refund_address: TronAddress | None = Field(default=None, description="refund: to whom")

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.action == "extend" and (
            self.expires_at is None or self.expires_at <= self.resolved_at
        ):
            raise InvalidExpiry("extend needs an expires_at in the future", param="expires_in")
        if self.action == "refund" and (self.refund_id is None or self.refund_address is None):
            raise ValueError("a refund resolution names its refund id and address")
        return self

    @property
    def aggregate_id(self) -> str:
        return self.invoice_id


class _InvoicePaymentCommand(Command):
    """The payment agent telling an invoice how one of its payments is doing."""

    invoice_id: Identifier
    payment_id: Identifier

    @property
    def aggregate_id(self) -> str:
        return self.invoice_id


class ApplyPaymentDetected(_InvoicePaymentCommand):
    amount: PositiveUsdt
    detected_at: UtcDatetime


class ApplyPaymentConfirmed(_InvoicePaymentCommand):
    amount: PositiveUsdt
    confirmed_at: UtcDatetime


class ApplyPaymentOrphaned(_InvoicePaymentCommand):
    orphaned_at: UtcDatetime


class ApplyPaymentFailed(_InvoicePaymentCommand):
    failed_at: UtcDatetime
    reason: str = Field(max_length=500)


# --- payment ------------------------------------------------------------------------------------


class DetectPayment(Command):
    """Track a transfer to an invoice's deposit address as a payment (again, after a reorg)."""

    invoice_id: Identifier
    merchant_id: Identifier
    tx_hash: TxHash
    log_index: int = Field(ge=0)
    deposit_address: TronAddress
    from_address: TronAddress
    amount: PositiveUsdt
    block_number: BlockNumber
    block_id: BlockId
    block_timestamp: UtcDatetime
    required_confirmations: int = Field(ge=1)
    head_number: BlockNumber | None = Field(
        default=None, description="the chain head when seen; the transfer's block if unknown"
    )

    @model_validator(mode="after")
    def _head_not_below_block(self) -> Self:
        # The watcher reports transfers of blocks it has processed, so its head is at least there.
        if self.head_number is not None and self.head_number < self.block_number:
            raise ValueError("head_number must not be below block_number")
        return self

    @classmethod
    def from_transfer(
        cls,
        transfer: TransferObserved,
        *,
        invoice_id: str,
        merchant_id: str,
        required_confirmations: int,
        head_number: int | None = None,
    ) -> Self:
        """The command for a transfer observed in a block; its id names the transfer and block."""
        return cls(
            command_id=f"detect:{transfer.transfer_id}@{transfer.block_id}",
            invoice_id=invoice_id,
            merchant_id=merchant_id,
            tx_hash=transfer.tx_hash,
            log_index=transfer.log_index,
            deposit_address=transfer.to_address,
            from_address=transfer.from_address,
            amount=transfer.amount,
            block_number=transfer.block_number,
            block_id=transfer.block_id,
            block_timestamp=transfer.block_timestamp,
            required_confirmations=required_confirmations,
            head_number=head_number,
        )

    @property
    def payment_id(self) -> str:
        return transfer_id(self.tx_hash, self.log_index)

    @property
    def aggregate_id(self) -> str:
        return self.payment_id


class UpdateConfirmations(Command):
    payment_id: Identifier
    head_number: BlockNumber
    observed_at: UtcDatetime

    @classmethod
    def from_head(cls, payment_id: str, head: ChainHeadAdvanced) -> Self:
        return cls(
            command_id=f"head:{head.head_number}:{head.head_block_id}",
            payment_id=payment_id,
            head_number=head.head_number,
            observed_at=head.observed_at,
        )

    @property
    def aggregate_id(self) -> str:
        return self.payment_id


class OrphanPayment(Command):
    payment_id: Identifier
    block_id: BlockId = Field(description="the block that was reorganised away")
    orphaned_at: UtcDatetime

    @classmethod
    def from_orphan(cls, orphan: TransferOrphaned, *, orphaned_at: datetime) -> Self:
        """``orphaned_at``: when the watcher noticed the reorg (the observation has no time)."""
        return cls(
            command_id=f"orphan:{orphan.transfer_id}@{orphan.block_id}",
            payment_id=orphan.transfer_id,
            block_id=orphan.block_id,
            orphaned_at=orphaned_at,
        )

    @property
    def aggregate_id(self) -> str:
        return self.payment_id


class FailPayment(Command):
    payment_id: Identifier
    failed_at: UtcDatetime
    reason: str = Field(max_length=500)

    @property
    def aggregate_id(self) -> str:
        return self.payment_id


# --- settlement ---------------------------------------------------------------------------------


class _InvoiceSettlementCommand(Command):
    """A command addressed to an invoice's settlement of one round (its id derives from both)."""

    invoice_id: Identifier
    settlement_round: int = Field(default=1, ge=1)

    @property
    def settlement_id(self) -> str:
        return settlement_id_for(self.invoice_id, self.settlement_round)

    @property
    def aggregate_id(self) -> str:
        return self.settlement_id


class CreateSettlement(_InvoiceSettlementCommand):
    merchant_id: Identifier
    gross_amount: PositiveUsdt
    fee_percentage: FeePercentage
    created_at: UtcDatetime


class CompleteSettlement(Command):
    settlement_id: Identifier
    completed_at: UtcDatetime
    reference: str | None = Field(default=None, max_length=200)

    @property
    def aggregate_id(self) -> str:
        return self.settlement_id


class ReverseSettlement(_InvoiceSettlementCommand):
    """Book back the invoice's settlement of ``settlement_round``: a confirmed payment is gone."""

    settlement_round: int = Field(ge=1)
    payment_id: Identifier
    reversed_at: UtcDatetime
    reference: str | None = Field(default=None, max_length=200)


class FailSettlement(Command):
    settlement_id: Identifier
    failed_at: UtcDatetime
    reason: str = Field(max_length=500)

    @property
    def aggregate_id(self) -> str:
        return self.settlement_id


InvoiceCommand = (
    CreateInvoice
    | CancelInvoice
    | ExpireInvoice
    | ResolveInvoice
    | ApplyPaymentDetected
    | ApplyPaymentConfirmed
    | ApplyPaymentOrphaned
    | ApplyPaymentFailed
)
PaymentCommand = DetectPayment | UpdateConfirmations | OrphanPayment | FailPayment
SettlementCommand = CreateSettlement | CompleteSettlement | FailSettlement | ReverseSettlement
