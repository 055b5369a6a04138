"""Settle a paid invoice: the settlement agent's use case.

For each ``InvoicePaid`` the invoice's settlement (of its round) is created (gross = everything
confirmed, fee at the percentage fixed on the invoice, net = gross − fee;
app/domain/settlement.py), booked in the ledger exactly once, and completed with the booking's
reference. Its whole history (two events, with their fixed ids) is published every time, so a
redelivered ``InvoicePaid`` re-sends whatever a crash may have kept from reaching Kafka, and
duplicates nothing.

A reorg that takes a confirmed payment from a paid invoice (``InvoicePaymentReverted`` with a
``reversed_round``) reverses that round's settlement: the ledger books it back by a reversal
entry, then ``SettlementReversed`` is published (webhooks tell the merchant; the alert
SettlementReversed tells the operators). Paid again, the invoice settles in the next round.

Its business metrics (settlements completed, volume, fee accuracy, payment confirmation time) are
app/services/business_metrics.py; they never change what happens here.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram

from app.domain.commands import CompleteSettlement, CreateSettlement, ReverseSettlement
from app.domain.errors import AlreadyExists, SettlementNotFound
from app.domain.events import DomainEvent, InvoicePaymentReverted
from app.domain.money import format_usdt
from app.domain.policies import settlement_command_for
from app.domain.settlement import Settlement, handle_settlement
from app.domain.statuses import SettlementStatus
from app.services.business_metrics import PaymentConfirmationClock, settlement_completed
from app.services.ports import EventPublisher, Ledger, SettlementStore

SETTLEMENT_SECONDS = Histogram(
    "checkout_settlement_seconds",
    "From the InvoicePaid event to the settlement completed",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UNSETTLED_PAYMENTS_ORPHANED = Counter(
    "checkout_unsettled_payments_orphaned",
    "Confirmed payments no settlement took (paid late, after the invoice was paid, of an "
    "underpaid invoice) reorganised away: a refund of that money would pay out USDT no longer "
    "held (alert UnsettledPaymentOrphaned)",
)
SETTLEMENTS_REVERSED = Counter(
    "checkout_settlements_reversed",
    "Settlements booked back because a reorg took a confirmed payment (alert SettlementReversed)",
)

logger = logging.getLogger(__name__)


class Settling:
    def __init__(
        self,
        settlements: SettlementStore,
        ledger: Ledger,
        events: EventPublisher,
        confirmation_clock: PaymentConfirmationClock | None = None,
    ) -> None:
        self._settlements = settlements
        self._ledger = ledger
        self._events = events
        self._confirmation_clock = (
            PaymentConfirmationClock() if confirmation_clock is None else confirmation_clock
        )

    def command_for(self, event: DomainEvent) -> CreateSettlement | ReverseSettlement | None:
        """What an event asks of a settlement: a paid invoice is settled, a paid invoice a reorg
        reopened has its settlement reversed.

        Every domain event of the agent's partitions passes here: the payment confirmation time
        (first payment's block → InvoicePaid) is read from them on the way."""
        self._confirmation_clock.observe(event)
        if (
            isinstance(event, InvoicePaymentReverted)
            and event.data.was_confirmed
            and event.data.reversed_round is None
        ):
            UNSETTLED_PAYMENTS_ORPHANED.inc()
            logger.error(
                "confirmed payment %s (%s USDT) of invoice %s (%s) was reorganised away; no"
                " settlement took it: check the invoice's refunds of received money before any"
                " is approved or sent",
                event.data.payment_id,
                format_usdt(event.data.payment_amount),
                event.aggregate_id,
                event.data.status,
            )
        return settlement_command_for(event)

    async def settle(self, command: CreateSettlement | ReverseSettlement) -> Settlement:
        if isinstance(command, ReverseSettlement):
            return await self._reverse(command)
        current = self._settlements.get(command.invoice_id)
        if current is not None and current.settlement_round != command.settlement_round:
            if current.settlement_round > command.settlement_round:
                return current  # an earlier round's InvoicePaid redelivered: that round is done
            if current.status is not SettlementStatus.REVERSED:
                raise AlreadyExists(
                    f"invoice {command.invoice_id} is settled by {current.settlement_id} "
                    f"({current.status}); round {command.settlement_round} needs it reversed",
                    param="invoice_id",
                )
            current = None  # paid again after a reversal: the new round is a settlement of its own
        settlement, _ = handle_settlement(current, command)
        if settlement.status is SettlementStatus.PENDING:
            booking = await self._ledger.book_settlement(settlement)
            complete = CompleteSettlement(
                command_id=f"complete:{settlement.settlement_id}",
                settlement_id=settlement.settlement_id,
                completed_at=booking.credited_at,
                reference=booking.reference,
            )
            settlement, _ = handle_settlement(settlement, complete)
            SETTLEMENT_SECONDS.observe(
                max(0.0, (booking.credited_at - command.created_at).total_seconds())
            )
            settlement_completed(settlement, command.gross_amount, command.fee_percentage)
        if settlement is not current:
            self._settlements.put(settlement)
        await self._events.publish_events(settlement.history)
        return settlement

    async def _reverse(self, command: ReverseSettlement) -> Settlement:
        """Book the round's settlement back: its ledger reversal first, then its event (again
        for a redelivered reversal: a crash may have kept it from Kafka)."""
        current = self._settlements.of_round(command.invoice_id, command.settlement_round)
        if current is None:
            raise SettlementNotFound(
                f"invoice {command.invoice_id} has no settlement of round "
                f"{command.settlement_round} to reverse",
                param="invoice_id",
            )
        if current.status is SettlementStatus.COMPLETED:
            booking = await self._ledger.reverse_settlement(current)
            command = command.model_copy(update={"reference": booking.reference})
            SETTLEMENTS_REVERSED.inc()
            logger.error(
                "settlement %s of invoice %s reversed: its payment %s was reorganised away "
                "after it was confirmed (%s USDT gross booked back)",
                current.settlement_id,
                current.invoice_id,
                command.payment_id,
                format_usdt(current.gross_amount),
            )
        settlement, _ = handle_settlement(current, command)
        if settlement is not current:
            self._settlements.put(settlement)
        await self._events.publish_events(settlement.history)
        return settlement
