"""The payment agent: transfers to deposit addresses become payments, counted to finality.

It consumes ``checkout.deposits``, keyed by deposit address, so everything about one address —
its registration by the invoice agent, the transfers to it, their orphaning — arrives in order on
one partition, where the ``deposits`` table holds that address's invoice and payments: the join
is local, no global lookup. The chain watcher sends every chain head to every partition, so each
partition counts confirmations for its own addresses in order with their transfers.

Each payment change is a domain event; the ones the invoice must know (detected, confirmed,
orphaned, failed) become invoice commands (app/domain/policies.py).
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from prometheus_client import Counter

from app.domain.commands import DetectPayment, OrphanPayment, PaymentCommand, UpdateConfirmations
from app.domain.deposit import AddressConflict
from app.domain.observations import ChainHeadAdvanced, TransferObserved
from app.domain.payment import Payment, handle_payment
from app.domain.policies import invoice_command_for
from app.domain.statuses import PaymentStatus
from app.faust_app import app, topics
from app.runtime.codecs import (
    ChainHeadMessage,
    DepositMessage,
    DepositRegistered,
    OrphanMessage,
    TransferMessage,
    decode_deposit_message,
)
from app.runtime.dead_letters import dead_letter_event
from app.runtime.pipelining import AckPipeline
from app.runtime.publishing import publish_events, send_invoice_commands
from app.runtime.retry import retry_transient
from app.runtime.shutdown import hold_if_stopping
from app.runtime.topics import DEPOSITS, dead_letter
from tables.deposits import confirmation_watch, deposits

logger = logging.getLogger(__name__)

# Payments in these statuses still wait for chain heads.
COUNTING = frozenset({PaymentStatus.DETECTED, PaymentStatus.CONFIRMING})

TRANSFERS_IGNORED = Counter(
    "checkout_transfers_ignored",
    "USDT transfers seen on chain that pay no invoice",
    ["reason"],
)


@app.agent(topics[DEPOSITS.name], concurrency=1)
async def payment_agent(stream: faust.StreamT[Any]) -> None:
    # Decided one by one; each acknowledged once its events and commands are
    # (app/runtime/pipelining.py).
    await AckPipeline(stream, "payment_agent", process_deposit_event).run()


async def process_deposit_event(event: faust.EventT) -> None:
    partition = event.message.partition
    try:
        message = decode_deposit_message(event.value)
        await retry_transient(
            lambda: apply_deposit_message(message, partition), what="deposit message"
        )
    except Exception as exc:  # refused or malformed: kept with its error, never lost
        await _dead_letter(event, exc)


async def apply_deposit_message(message: DepositMessage, partition: int) -> None:
    match message:
        case DepositRegistered():
            register(message)
        case TransferMessage():
            await on_transfer(message.transfer, partition)
        case OrphanMessage():
            await on_orphan(message)
        case ChainHeadMessage():
            await on_chain_head(message.head, partition)


def register(registration: DepositRegistered) -> None:
    known = deposits.get(registration.deposit_address)
    if known is None:
        deposits[registration.deposit_address] = {
            "registration": registration.model_dump(mode="json"),
            "payments": {},
        }
        return
    if known["registration"]["invoice_id"] != registration.invoice_id:
        raise AddressConflict(
            f"deposit address {registration.deposit_address} already belongs to invoice "
            f"{known['registration']['invoice_id']}, not {registration.invoice_id}",
            param="deposit_address",
        )


async def on_transfer(transfer: TransferObserved, partition: int) -> None:
    account = deposits.get(transfer.to_address)
    if account is None:
        # The watcher publishes only transfers to our deposit addresses, and an address is
        # registered here before its invoice is handed out: this should not happen, so say so.
        TRANSFERS_IGNORED.labels(reason="not_a_deposit_address").inc()
        logger.warning(
            "transfer %s to %s (partition %d): no invoice registered for this address here; "
            "not applied",
            transfer.transfer_id,
            transfer.to_address,
            partition,
        )
        return
    if transfer.amount == 0:
        # Zero-value transfers are address-poisoning spam, never a payment.
        TRANSFERS_IGNORED.labels(reason="zero_amount").inc()
        return
    registration = DepositRegistered.model_validate(account["registration"])
    if transfer.block_timestamp > registration.monitor_until:
        TRANSFERS_IGNORED.labels(reason="after_monitoring_window").inc()
        logger.warning(
            "transfer %s to %s of invoice %s came after its monitoring window; not applied",
            transfer.transfer_id,
            transfer.to_address,
            registration.invoice_id,
        )
        return
    head = _last_head(partition)
    command = DetectPayment.from_transfer(
        transfer,
        invoice_id=registration.invoice_id,
        merchant_id=registration.merchant_id,
        required_confirmations=registration.required_confirmations,
        head_number=max(head.head_number, transfer.block_number) if head else None,
    )
    await _apply(transfer.to_address, command, partition)


async def on_orphan(message: OrphanMessage) -> None:
    orphan = message.orphan
    account = deposits.get(orphan.to_address)
    if account is None or orphan.transfer_id not in account["payments"]:
        return  # a transfer we never applied (not ours, or ignored)
    command = OrphanPayment.from_orphan(orphan, orphaned_at=message.noticed_at)
    await _apply(orphan.to_address, command, partition=None)


async def on_chain_head(head: ChainHeadAdvanced, partition: int) -> None:
    watch = _watch(partition)
    last = watch.get("head")
    if last is not None and ChainHeadAdvanced.model_validate(last).head_number > head.head_number:
        return  # an older head redelivered: confirmations only ever count up
    watch["head"] = head.model_dump(mode="json")
    confirmation_watch[str(partition)] = watch
    for address in list(watch["awaiting"]):
        payments = deposits[address]["payments"]
        for payment_id, stored in payments.items():
            if Payment.from_dict(stored).status in COUNTING:
                await _apply(address, UpdateConfirmations.from_head(payment_id, head), partition)


async def _apply(address: str, command: PaymentCommand, partition: int | None) -> None:
    """Decide, store, publish, and tell the invoice: the order that makes a retry harmless."""
    account = deposits[address]
    stored = account["payments"].get(command.aggregate_id)
    current = None if stored is None else Payment.from_dict(stored)
    payment, events = handle_payment(current, command)
    if payment is not current:
        account["payments"][payment.payment_id] = payment.to_dict()
        deposits[address] = account
    if partition is not None:
        _update_awaiting(address, account, partition)
    await publish_events(events)
    commands = [cmd for cmd in map(invoice_command_for, events) if cmd is not None]
    await send_invoice_commands(commands)


def _update_awaiting(address: str, account: dict[str, Any], partition: int) -> None:
    counting = any(
        Payment.from_dict(stored).status in COUNTING for stored in account["payments"].values()
    )
    watch = _watch(partition)
    awaiting: list[str] = watch["awaiting"]
    if counting and address not in awaiting:
        awaiting.append(address)
    elif not counting and address in awaiting:
        awaiting.remove(address)
    else:
        return
    confirmation_watch[str(partition)] = watch


def _watch(partition: int) -> dict[str, Any]:
    stored = confirmation_watch.get(str(partition))
    return {"head": None, "awaiting": []} if stored is None else dict(stored)


def _last_head(partition: int) -> ChainHeadAdvanced | None:
    head = _watch(partition)["head"]
    return None if head is None else ChainHeadAdvanced.model_validate(head)


async def _dead_letter(event: faust.EventT, error: BaseException) -> None:
    await hold_if_stopping()  # an error against closed tables says nothing about the message
    dlq = topics[dead_letter(DEPOSITS).name]
    await dead_letter_event(dlq, event, agent="payment_agent", error=error)
