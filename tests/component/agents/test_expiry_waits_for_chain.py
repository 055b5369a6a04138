"""Expiry waits for the chain: an invoice expires only once every deposits partition has
processed a block produced after its ``expires_at`` (app/services/expiry.py), so a lagging
watcher, node or worker never turns an on-time payment into a late one."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from agents.invoices import InvoiceAgent
from agents.payments import PaymentAgent
from app.domain.commands import ExpireInvoice
from app.domain.observations import ChainHeadAdvanced
from app.runtime.codecs import (
    ChainHeadMessage,
    DepositRegistered,
    TransferMessage,
    encode_deposit_message,
    encode_invoice_command,
)
from tests.support.fakes import FakeEvent, MemoryChainProgress, MemoryWorld, NoReplies
from tests.unit.domain.factories import (
    BLOCK,
    DEPOSIT_ADDRESS,
    EXPIRES_AT,
    INVOICE_ID,
    chain_head,
    create_invoice,
    deposit_registration,
    transfer_observed,
)

pytestmark = pytest.mark.component

AFTER_GRACE = EXPIRES_AT + timedelta(minutes=5)  # the wall clock, long past expiry and grace


def head_at(number: int, produced: datetime) -> ChainHeadAdvanced:
    return chain_head(number).model_copy(update={"block_timestamp": produced})


def progress_of(world: MemoryWorld) -> MemoryChainProgress:
    progress = world.ports.chain_progress
    assert isinstance(progress, MemoryChainProgress)
    return progress


async def open_invoice(world: MemoryWorld) -> None:
    agent = InvoiceAgent(world.services.invoice_commands, world.dead_letters, NoReplies())
    await agent.handle(
        FakeEvent("checkout.invoice-commands", encode_invoice_command(create_invoice(), None))
    )
    world.publisher.invoice_commands.clear()


async def test_an_invoice_waits_until_the_chain_is_processed_past_its_expiry(
    world: MemoryWorld,
) -> None:
    await open_invoice(world)
    progress = progress_of(world)
    # Nothing processed yet (watcher down, node unreachable): the invoice stays open.
    assert await world.services.expiry.sweep(AFTER_GRACE) == []
    # The chain processed up to a block of the expiry's very second: a payment may still be in it.
    progress.note(0, head_at(BLOCK, EXPIRES_AT))
    assert await world.services.expiry.sweep(AFTER_GRACE) == []
    # One partition past it is not enough: every partition must be.
    progress.note(1, head_at(BLOCK + 1, EXPIRES_AT + timedelta(seconds=3)))
    assert await world.services.expiry.sweep(AFTER_GRACE) == []
    progress.note(0, head_at(BLOCK + 1, EXPIRES_AT + timedelta(seconds=3)))
    assert await world.services.expiry.sweep(AFTER_GRACE) == [INVOICE_ID]
    [command] = world.publisher.invoice_commands
    assert isinstance(command, ExpireInvoice) and command.invoice_id == INVOICE_ID


async def test_the_wall_clock_grace_still_applies_when_the_chain_is_ahead(
    world: MemoryWorld,
) -> None:
    await open_invoice(world)
    progress_of(world).note(0, head_at(BLOCK, EXPIRES_AT + timedelta(seconds=3)))
    grace = world.settings.expiry_grace
    assert await world.services.expiry.sweep(EXPIRES_AT + timedelta(seconds=grace - 1)) == []
    assert await world.services.expiry.sweep(EXPIRES_AT + timedelta(seconds=grace)) == [INVOICE_ID]


async def test_the_payment_agent_notes_a_partition_once_its_head_is_acknowledged(
    world: MemoryWorld,
) -> None:
    agent = PaymentAgent(world.services.deposits, world.dead_letters)

    def on_partition(payload: object, partition: int) -> FakeEvent:
        value = encode_deposit_message(payload)  # type: ignore[arg-type]
        return FakeEvent(
            "checkout.deposits", value, key=DEPOSIT_ADDRESS.encode(), partition=partition
        )

    async def handled_and_acknowledged(event: FakeEvent) -> None:
        await agent.acknowledged(event, await agent.handle(event))

    await handled_and_acknowledged(
        on_partition(DepositRegistered.of(deposit_registration(INVOICE_ID)), 3)
    )
    await handled_and_acknowledged(on_partition(TransferMessage(transfer=transfer_observed()), 3))
    produced = EXPIRES_AT + timedelta(seconds=1)
    head = on_partition(ChainHeadMessage(head=head_at(BLOCK, produced)), 3)
    applied = await agent.handle(head)
    progress = progress_of(world)
    # Applied, but what it caused may still be only buffered (app/runtime/pipelining.py): the
    # partition's progress waits for the acknowledgement.
    assert progress.heads == {}
    await agent.acknowledged(head, applied)
    await handled_and_acknowledged(
        on_partition(ChainHeadMessage(head=chain_head(BLOCK + 1)), 4)  # no block time
    )
    assert set(progress.heads) == {3}  # a head without a block time says nothing of the chain
    assert progress.heads[3].block_timestamp == produced
    assert await progress.chain_time() == produced
