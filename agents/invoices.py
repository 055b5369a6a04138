"""The invoice agent: the one writer of invoices.

It consumes ``checkout.invoice-commands`` (from the HTTP API, which asks and waits for the
answer, from the payment agent and from the expiry timer), applies each command through the
domain (app/domain/invoice.py), stores the invoice in the ``invoices`` table, publishes the events
and answers the asker. A new invoice's deposit address is registered with the payment agent.

Idempotent by construction: a redelivered command finds its events in the invoice's history and
re-publishes those same events (same ids) instead of deciding again.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import faust

from app.adapters.redis.replies import send_reply
from app.domain.commands import CreateInvoice, InvoiceCommand
from app.domain.errors import CheckoutError
from app.domain.events import InvoiceCreated, InvoiceEvent
from app.domain.invoice import Invoice, handle_invoice
from app.domain.statuses import InvoiceStatus
from app.faust_app import app, resources, settings, topics
from app.runtime.codecs import DepositRegistered, decode_invoice_command, reply_address
from app.runtime.dead_letters import dead_letter_event
from app.runtime.pipelining import AckPipeline
from app.runtime.publishing import publish_events, send_deposit_message
from app.runtime.retry import retry_transient
from app.runtime.shutdown import hold_if_stopping
from app.runtime.topics import INVOICE_COMMANDS, dead_letter
from tables.invoices import invoices, open_invoices

logger = logging.getLogger(__name__)

OPEN_STATUSES = frozenset({InvoiceStatus.PENDING, InvoiceStatus.CONFIRMING})


@app.agent(topics[INVOICE_COMMANDS.name], concurrency=1)
async def invoice_agent(stream: faust.StreamT[Any]) -> None:
    # Decided one by one; the caller is answered once the invoice's events are acknowledged.
    await AckPipeline(
        stream, "invoice_agent", process_invoice_message, on_acknowledged=answer_caller
    ).run()


async def answer_caller(event: faust.EventT, answer: dict[str, Any]) -> None:
    reply_to = reply_address(event.value)
    if reply_to is not None:
        await send_reply(resources.redis, reply_to, answer)


async def process_invoice_message(event: faust.EventT) -> dict[str, Any]:
    """Apply one command; the answer is for the HTTP caller when there is one."""
    asked = reply_address(event.value) is not None
    try:
        command = decode_invoice_command(event.value)
        invoice = await retry_transient(
            lambda: apply_invoice_command(command), what="invoice command"
        )
    except CheckoutError as exc:
        # A refusal answers the HTTP caller; one from inside the platform needs an operator.
        if not asked:
            await _dead_letter(event, exc)
        return {"ok": False, "error": refusal(exc)}
    except Exception as exc:  # a malformed message or a bug: kept, with its error, never lost
        await _dead_letter(event, exc)
        return {"ok": False, "error": None}
    return {"ok": True, "invoice": invoice.to_dict()}


def refusal(error: CheckoutError) -> dict[str, str | None]:
    """A refusal for the caller, by class: the web layer decides what status it is."""
    return {
        "class": type(error).__name__,
        "code": error.code,
        "message": error.message,
        "param": error.param,
    }


async def apply_invoice_command(command: InvoiceCommand) -> Invoice:
    stored = invoices.get(command.aggregate_id)
    current = None if stored is None else Invoice.from_dict(stored)
    invoice, events = handle_invoice(current, command)
    if invoice is not current:
        invoices[invoice.invoice_id] = invoice.to_dict()
    await publish_events(events)
    await _register_new_deposit_address(command, events)
    _track_expiry(invoice)
    return invoice


async def _register_new_deposit_address(
    command: InvoiceCommand, events: list[InvoiceEvent]
) -> None:
    """Tell the payment agent which invoice a new deposit address belongs to."""
    if not isinstance(command, CreateInvoice):
        return
    for event in events:
        if isinstance(event, InvoiceCreated):
            data = event.data
            registration = DepositRegistered(
                deposit_address=data.deposit_address,
                invoice_id=event.aggregate_id,
                merchant_id=event.merchant_id,
                amount=data.amount,
                required_confirmations=data.required_confirmations,
                expires_at=data.expires_at,
                monitor_until=data.expires_at + timedelta(seconds=settings.late_payment_window),
            )
            await send_deposit_message(data.deposit_address, registration)


def _track_expiry(invoice: Invoice) -> None:
    is_open = invoice.invoice_id in open_invoices
    if invoice.status in OPEN_STATUSES and not is_open:
        open_invoices[invoice.invoice_id] = invoice.expires_at.isoformat()
    elif invoice.status not in OPEN_STATUSES and is_open:
        del open_invoices[invoice.invoice_id]


async def _dead_letter(event: faust.EventT, error: BaseException) -> None:
    await hold_if_stopping()  # an error against closed tables says nothing about the message
    dlq = topics[dead_letter(INVOICE_COMMANDS).name]
    await dead_letter_event(dlq, event, agent="invoice_agent", error=error)
