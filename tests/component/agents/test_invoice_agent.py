"""The invoice agent's handler: commands in, the invoice stored, events out, the caller answered."""

from __future__ import annotations

from typing import Any

import pytest

from agents.invoices import InvoiceAgent
from app.domain.statuses import InvoiceStatus
from app.runtime.codecs import encode_invoice_command
from tests.support.fakes import FakeEvent, MemoryWorld
from tests.unit.domain.factories import (
    DEPOSIT_ADDRESS,
    INVOICE_ID,
    cancel,
    create_invoice,
    detected,
)

pytestmark = pytest.mark.component

TOPIC = "checkout.invoice-commands"
REPLY_TO = {"channel": "checkout:replies:test", "request_id": "req-1"}


class Replies:
    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, str], dict[str, Any]]] = []

    async def send_reply(self, reply_to: dict[str, str], answer: dict[str, Any]) -> None:
        self.sent.append((reply_to, answer))


def agent_of(world: MemoryWorld) -> tuple[InvoiceAgent, Replies]:
    replies = Replies()
    return InvoiceAgent(world.services.invoice_commands, world.dead_letters, replies), replies


def message(command: Any, reply_to: dict[str, str] | None = REPLY_TO) -> FakeEvent:
    value = encode_invoice_command(command, reply_to)
    return FakeEvent(TOPIC, value, key=command.aggregate_id.encode())


async def test_a_new_invoice_is_stored_published_registered_and_answered(
    world: MemoryWorld,
) -> None:
    agent, replies = agent_of(world)
    event = message(create_invoice())
    answer = await agent.handle(event)
    await agent.answer(event, answer)

    invoice = world.tables.invoices.get(INVOICE_ID)
    assert invoice is not None and invoice.status is InvoiceStatus.PENDING
    assert world.publisher.event_types() == ["InvoiceCreated"]
    [registration] = world.publisher.registrations
    assert (registration.deposit_address, registration.invoice_id) == (DEPOSIT_ADDRESS, INVOICE_ID)
    assert [invoice_id for invoice_id, _ in world.tables.open_invoices.open_invoices()] == [
        INVOICE_ID
    ]
    [(reply_to, sent)] = replies.sent
    assert reply_to == REPLY_TO
    assert sent["ok"] and sent["invoice"]["invoice_id"] == INVOICE_ID
    assert world.dead_letter_topics.records() == []


async def test_a_redelivered_command_publishes_the_same_events_and_changes_nothing(
    world: MemoryWorld,
) -> None:
    agent, _ = agent_of(world)
    command = create_invoice()
    await agent.handle(message(command))
    first = list(world.publisher.events)
    stored = world.tables.invoices.get(INVOICE_ID)
    world.publisher.clear()

    answer = await agent.handle(message(command))  # Kafka delivers it again

    assert answer["ok"]
    assert [e.event_id for e in world.publisher.events] == [e.event_id for e in first]
    assert world.tables.invoices.get(INVOICE_ID) == stored  # same version, same history
    # The registration goes again: the payment agent recognises it (same invoice).
    assert [r.invoice_id for r in world.publisher.registrations] == [INVOICE_ID]
    assert world.dead_letter_topics.records() == []


async def test_kafka_refusing_the_events_is_retried_and_publishes_them_once(
    world: MemoryWorld,
) -> None:
    agent, _ = agent_of(world)
    world.publisher.fail_next = ConnectionError("broker unavailable")
    answer = await agent.handle(message(create_invoice()))

    assert answer["ok"]
    # Stored before publishing: the retry finds the invoice and re-publishes its events.
    assert world.publisher.event_types() == ["InvoiceCreated"]
    invoice = world.tables.invoices.get(INVOICE_ID)
    assert invoice is not None and invoice.version == 1
    assert world.dead_letter_topics.records() == []


async def test_a_refused_command_answers_the_caller_by_class_and_is_not_dead_lettered(
    world: MemoryWorld,
) -> None:
    agent, _ = agent_of(world)
    answer = await agent.handle(message(cancel()))  # no such invoice

    assert answer == {
        "ok": False,
        "error": {
            "class": "InvoiceNotFound",
            "code": "invoice_not_found",
            "message": f"invoice {INVOICE_ID} does not exist",
            "param": "invoice_id",
        },
    }
    assert world.publisher.events == []
    assert world.dead_letter_topics.records() == []


async def test_a_refusal_nobody_waits_for_goes_to_the_dead_letter_topic(world: MemoryWorld) -> None:
    agent, _ = agent_of(world)
    event = message(detected("p1", 4_000_000), reply_to=None)  # from the payment agent
    await agent.handle(event)

    [record] = world.dead_letter_topics.records(TOPIC)
    assert record["agent"] == "invoice_agent"
    assert record["error_type"] == "InvoiceNotFound"
    assert record["source"] == {"topic": TOPIC, "partition": 0, "offset": event.message.offset}
    assert world.tables.invoices.get(INVOICE_ID) is None


@pytest.mark.parametrize(
    "value",
    [
        {"type": "CreateInvoice"},
        {"type": "ExplodeInvoice", "command": {}},
        {"type": "CreateInvoice", "command": {"invoice_id": "inv_1"}},
        "not an envelope",
    ],
)
async def test_a_malformed_message_goes_to_the_dead_letter_topic_with_its_error(
    world: MemoryWorld, value: Any
) -> None:
    agent, _ = agent_of(world)
    answer = await agent.handle(FakeEvent(TOPIC, value, key=b"inv_1"))

    assert answer == {"ok": False, "error": None}
    [record] = world.dead_letter_topics.records(TOPIC)
    assert record["agent"] == "invoice_agent"
    assert record["error_type"] in {"MalformedMessage", "ValidationError"}
    assert record["key"] == {"text": "inv_1"}
    assert world.publisher.events == []
