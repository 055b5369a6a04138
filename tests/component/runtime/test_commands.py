"""Asking the invoice agent: its answer read back (the invoice, or the refusal raised as the class
it was), and a create answered by the invoice's owner when the answer cannot come."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from app.adapters.redis.replies import CommandReplies
from app.domain.commands import InvoiceCommand
from app.domain.errors import InvalidTransition, InvoiceNotFound
from app.domain.invoice import Invoice
from app.runtime.commands import (
    AskInvoiceAgent,
    InvoiceCommandFailed,
    answer_refusal,
    read_answer,
)
from app.services.errors import CommandTimeout
from tests.unit.domain.factories import INVOICE_ID, cancel, create_invoice, new_invoice

pytestmark = pytest.mark.component


def test_a_refusal_comes_back_as_its_own_class_with_its_message_and_param() -> None:
    refusal = InvalidTransition("invoice", "inv_1", "paid", "cancelled", [])
    with pytest.raises(InvalidTransition) as raised:
        read_answer(answer_refusal(refusal), cancel())
    assert (raised.value.message, raised.value.param) == (refusal.message, "status")


def test_an_answer_of_the_previous_release_is_read_by_its_code() -> None:
    # Before this layout the agent sent an HTTP status and no class name.
    old: dict[str, Any] = {
        "ok": False,
        "status": 404,
        "error": {
            "type": "not_found_error",
            "code": "invoice_not_found",
            "message": "no invoice inv_1",
            "param": "invoice_id",
        },
    }
    with pytest.raises(InvoiceNotFound):
        read_answer(old, cancel())


def test_an_agent_that_failed_on_the_command_is_an_error_not_a_refusal() -> None:
    with pytest.raises(InvoiceCommandFailed, match="dead-letter topic"):
        read_answer({"ok": False, "error": None}, cancel())


# --- asking: a create answered while the reply channel is unheard ------------------------------


class Commands:
    def __init__(self) -> None:
        self.sent: list[InvoiceCommand] = []

    async def send_invoice_command(
        self, command: InvoiceCommand, reply_to: dict[str, str] | None = None
    ) -> None:
        self.sent.append(command)


class Owner:
    """The worker owning the invoices: what its table holds."""

    def __init__(self) -> None:
        self.invoices: dict[str, Invoice] = {}
        self.asked: list[str] = []

    async def __call__(self, invoice_id: str) -> Invoice | None:
        self.asked.append(invoice_id)
        return self.invoices.get(invoice_id)


@pytest.fixture
def replies() -> CommandReplies:
    # Never connected: these tests only wait (no Redis is needed to time out).
    return CommandReplies(aioredis.Redis(host="127.0.0.1", port=1))


def gateway(replies: CommandReplies, owner: Owner, timeout: float = 3.0) -> AskInvoiceAgent:
    asking = AskInvoiceAgent(Commands(), replies, timeout)
    asking.find_created_with(owner)
    return asking


async def test_a_create_unanswered_while_redis_is_unheard_is_answered_by_its_owner() -> None:
    replies, owner = CommandReplies(aioredis.Redis(host="127.0.0.1", port=1)), Owner()
    replies.listening = False  # the reply channel's reads fail: Redis is down
    owner.invoices[INVOICE_ID] = new_invoice()
    # Found at the first look, half a second in, not when the 10 minutes are up (the guard).
    asking = gateway(replies, owner, timeout=600.0).ask(create_invoice())
    invoice = await asyncio.wait_for(asking, timeout=60)
    assert invoice.invoice_id == INVOICE_ID
    assert owner.asked == [INVOICE_ID]


async def test_a_create_whose_answer_was_lost_is_found_when_the_time_is_up(
    replies: CommandReplies,
) -> None:
    owner = Owner()
    owner.invoices[INVOICE_ID] = new_invoice()  # heard, but the agent's answer never came
    invoice = await gateway(replies, owner, timeout=0.6).ask(create_invoice())
    assert invoice.invoice_id == INVOICE_ID
    assert owner.asked == [INVOICE_ID]  # only once the time was up: the channel was heard


async def test_a_create_the_owner_does_not_have_times_out(replies: CommandReplies) -> None:
    replies.listening = False
    owner = Owner()
    with pytest.raises(CommandTimeout, match="same Idempotency-Key"):
        await gateway(replies, owner, timeout=1.2).ask(create_invoice())
    assert len(owner.asked) >= 2  # looked every half second, and once more at the end


async def test_other_commands_are_never_answered_from_the_table(replies: CommandReplies) -> None:
    # An invoice found does not say whether a cancel was applied or refused.
    replies.listening = False
    owner = Owner()
    owner.invoices[INVOICE_ID] = new_invoice()
    with pytest.raises(CommandTimeout):
        await gateway(replies, owner, timeout=0.6).ask(cancel())
    assert owner.asked == []


async def test_the_agents_answer_is_taken_when_it_comes(replies: CommandReplies) -> None:
    owner = Owner()
    commands = Commands()
    asking = AskInvoiceAgent(commands, replies, 5.0)
    asking.find_created_with(owner)
    command = create_invoice()
    asked = asyncio.create_task(asking.ask(command))
    await asyncio.sleep(0.1)
    [request_id] = list(replies._waiting)
    answer = {"ok": True, "invoice": new_invoice(amount="12.5").to_dict()}
    replies._deliver(orjson.dumps({"request_id": request_id, "answer": answer}))
    assert (await asked).amount == 12_500_000  # micro-USDT
    assert owner.asked == [] and replies._waiting == {}
