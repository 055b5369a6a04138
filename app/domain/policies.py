"""How one aggregate's events become another aggregate's commands.

The payment agent feeds each payment event through ``invoice_command_for`` and the settlement
agent each invoice event through ``settlement_command_for``. The command id is derived from the
event id, so a redelivered event becomes a redelivered command, which the target aggregate
recognises and answers with the events it yielded the first time.
"""

from __future__ import annotations

from app.domain.commands import (
    ApplyPaymentConfirmed,
    ApplyPaymentDetected,
    ApplyPaymentFailed,
    ApplyPaymentOrphaned,
    CreateSettlement,
    InvoiceCommand,
    ReverseSettlement,
)
from app.domain.events import (
    DomainEvent,
    InvoicePaid,
    InvoicePaymentReverted,
    PaymentConfirmed,
    PaymentDetected,
    PaymentFailed,
    PaymentOrphaned,
)


def command_id_for(event: DomainEvent) -> str:
    """The id of the command an event causes: one event, one command, whatever the redelivery."""
    return f"{event.event_type}:{event.event_id}"


def invoice_command_for(event: DomainEvent) -> InvoiceCommand | None:
    """What a payment event asks of its invoice; ``None`` when the invoice need not know."""
    command_id = command_id_for(event)
    match event:
        case PaymentDetected():
            return ApplyPaymentDetected(
                command_id=command_id,
                invoice_id=event.data.invoice_id,
                payment_id=event.aggregate_id,
                amount=event.data.amount,
                detected_at=event.occurred_at,
            )
        case PaymentConfirmed():
            return ApplyPaymentConfirmed(
                command_id=command_id,
                invoice_id=event.data.invoice_id,
                payment_id=event.aggregate_id,
                amount=event.data.amount,
                confirmed_at=event.occurred_at,
            )
        case PaymentOrphaned():
            return ApplyPaymentOrphaned(
                command_id=command_id,
                invoice_id=event.data.invoice_id,
                payment_id=event.aggregate_id,
                orphaned_at=event.occurred_at,
            )
        case PaymentFailed():
            return ApplyPaymentFailed(
                command_id=command_id,
                invoice_id=event.data.invoice_id,
                payment_id=event.aggregate_id,
                failed_at=event.occurred_at,
                reason=event.data.reason,
            )
        case _:
            return None


def settlement_command_for(event: DomainEvent) -> CreateSettlement | ReverseSettlement | None:
    """What an invoice event asks of its settlement: a paid invoice is settled (everything
    confirmed, at the invoice's fee, in its round); a paid invoice reopened by a reorg has the
    settlement of that round reversed."""
    if isinstance(event, InvoicePaid):
        return CreateSettlement(
            command_id=command_id_for(event),
            invoice_id=event.aggregate_id,
            merchant_id=event.merchant_id,
            gross_amount=(
                event.data.amount_confirmed
                if event.data.settled_amount is None
                else event.data.settled_amount
            ),
            fee_percentage=event.data.fee_percentage,
            created_at=event.occurred_at,
            settlement_round=event.data.settlement_round,
        )
    if isinstance(event, InvoicePaymentReverted) and event.data.reversed_round is not None:
        return ReverseSettlement(
            command_id=command_id_for(event),
            invoice_id=event.aggregate_id,
            settlement_round=event.data.reversed_round,
            payment_id=event.data.payment_id,
            reversed_at=event.occurred_at,
        )
    return None
