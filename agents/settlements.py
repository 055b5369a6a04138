"""The settlement agent: a paid invoice is split into fee and net and credited to the merchant.

It reads ``crypto-checkout.domain-events``; for each ``InvoicePaid`` it creates the invoice's one
settlement (gross = everything confirmed, fee at the percentage fixed on the invoice), books it in
the PostgreSQL ledger in one transaction, and completes it with the booking's reference. The
``settlements`` table is keyed by invoice id, on the invoice's own partition.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from prometheus_client import Histogram

from app.adapters.postgres.ledger import Ledger
from app.domain.commands import CompleteSettlement, CreateSettlement
from app.domain.events import parse_event
from app.domain.policies import settlement_command_for
from app.domain.settlement import Settlement, handle_settlement
from app.domain.statuses import SettlementStatus
from app.faust_app import app, resources, topics
from app.runtime.dead_letters import dead_letter_event
from app.runtime.pipelining import AckPipeline
from app.runtime.publishing import publish_events
from app.runtime.retry import retry_transient
from app.runtime.shutdown import hold_if_stopping
from app.runtime.topics import DOMAIN_EVENTS, dead_letter
from tables.settlements import settlements

logger = logging.getLogger(__name__)

SETTLEMENT_SECONDS = Histogram(
    "checkout_settlement_seconds",
    "From the InvoicePaid event to the settlement completed",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


@app.agent(topics[DOMAIN_EVENTS.name], concurrency=1)
async def settlement_agent(stream: faust.StreamT[Any]) -> None:
    # Decided one by one; each acknowledged once its events are (app/runtime/pipelining.py).
    await AckPipeline(stream, "settlement_agent", process_domain_event).run()


async def process_domain_event(event: faust.EventT) -> None:
    try:
        command = settlement_command_for(parse_event(event.value))
        if command is not None:
            await retry_transient(lambda: settle(command), what="settlement")
    except Exception as exc:  # a refused or unreadable event: kept with its error, never lost
        await _dead_letter(event, exc)


async def settle(command: CreateSettlement) -> Settlement:
    stored = settlements.get(command.invoice_id)
    current = None if stored is None else Settlement.from_dict(stored)
    settlement, _ = handle_settlement(current, command)
    if settlement.status is SettlementStatus.PENDING:
        booking = await Ledger(resources.db).book_settlement(settlement)
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
    if settlement is not current:
        settlements[command.invoice_id] = settlement.to_dict()
    # The settlement's whole history (two events) with their fixed ids: a redelivered InvoicePaid
    # re-sends whatever a crash may have kept from reaching Kafka, and duplicates nothing.
    await publish_events(settlement.history)
    return settlement


async def _dead_letter(event: faust.EventT, error: BaseException) -> None:
    await hold_if_stopping()  # an error against closed tables says nothing about the message
    dlq = topics[dead_letter(DOMAIN_EVENTS).name]
    await dead_letter_event(dlq, event, agent="settlement_agent", error=error)
