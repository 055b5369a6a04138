"""Settle a paid invoice: the settlement agent's use case.

For each ``InvoicePaid`` the invoice's one settlement is created (gross = everything confirmed,
fee at the percentage fixed on the invoice, net = gross − fee; app/domain/settlement.py), booked
in the ledger exactly once, and completed with the booking's reference. Its whole history (two
events, with their fixed ids) is published every time, so a redelivered ``InvoicePaid`` re-sends
whatever a crash may have kept from reaching Kafka, and duplicates nothing.

Its business metrics (settlements completed, volume, fee accuracy, payment confirmation time) are
app/services/business_metrics.py; they never change what happens here.
"""

from __future__ import annotations

from prometheus_client import Histogram

from app.domain.commands import CompleteSettlement, CreateSettlement
from app.domain.events import DomainEvent
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

    def command_for(self, event: DomainEvent) -> CreateSettlement | None:
        """The settlement an event asks for: only a paid invoice does.

        Every domain event of the agent's partitions passes here: the payment confirmation time
        (first payment's block → InvoicePaid) is read from them on the way."""
        self._confirmation_clock.observe(event)
        return settlement_command_for(event)

    async def settle(self, command: CreateSettlement) -> Settlement:
        current = self._settlements.get(command.invoice_id)
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
