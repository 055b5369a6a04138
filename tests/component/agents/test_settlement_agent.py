"""The settlement agent's handler: a paid invoice becomes one settlement, booked once."""

from __future__ import annotations

import pytest

from agents.settlements import SettlementAgent
from app.domain.events import DomainEvent, InvoicePaid, SettlementReversed
from app.domain.statuses import SettlementStatus
from tests.support.fakes import FakeEvent, MemoryWorld
from tests.unit.domain.factories import BLOCK
from tests.unit.live.scenario import Scenario

pytestmark = pytest.mark.component

TOPIC = "crypto-checkout.domain-events"


def paid_invoice(invoice_id: str = "inv_paid_1", amount: str = "9.99") -> list[DomainEvent]:
    scenario = Scenario(invoice_id=invoice_id, amount=amount)
    payment = scenario.pay(amount)
    scenario.confirmations(payment, scenario.required)
    return scenario.events


def message(event: DomainEvent) -> FakeEvent:
    return FakeEvent(TOPIC, event.model_dump_json().encode(), key=event.aggregate_id.encode())


def invoice_paid(events: list[DomainEvent]) -> InvoicePaid:
    return next(event for event in events if isinstance(event, InvoicePaid))


@pytest.fixture
def agent(world: MemoryWorld) -> SettlementAgent:
    return SettlementAgent(world.services.settling, world.dead_letters)


async def test_a_paid_invoice_is_settled_fee_and_net_booked_once(
    world: MemoryWorld, agent: SettlementAgent
) -> None:
    for event in paid_invoice():
        await agent.handle(message(event))  # every other event is passed over

    settlement = world.tables.settlements.get("inv_paid_1")
    assert settlement is not None and settlement.status is SettlementStatus.COMPLETED
    # 9.99 at 1 %: fee 0.10 (half-up to the cent), net 9.89 — to the micro-unit.
    assert (settlement.gross_amount, settlement.platform_fee_amount, settlement.net_amount) == (
        9_990_000,
        100_000,
        9_890_000,
    )
    assert world.publisher.event_types() == ["SettlementCreated", "SettlementCompleted"]
    assert world.ledger.times_booked == {settlement.settlement_id: 1}
    assert settlement.reference == world.ledger.bookings[settlement.settlement_id].reference


async def test_a_redelivered_invoice_paid_books_nothing_twice_and_resends_the_same_events(
    world: MemoryWorld, agent: SettlementAgent
) -> None:
    paid = invoice_paid(paid_invoice())
    await agent.handle(message(paid))
    first = [event.event_id for event in world.publisher.events]
    settled = world.tables.settlements.get("inv_paid_1")
    world.publisher.clear()

    await agent.handle(message(paid))  # Kafka delivers it again

    assert [event.event_id for event in world.publisher.events] == first
    assert world.tables.settlements.get("inv_paid_1") == settled
    assert settled is not None
    assert world.ledger.times_booked == {settled.settlement_id: 1}
    assert world.dead_letter_topics.records() == []


async def test_a_second_invoice_paid_for_the_same_invoice_is_refused_to_the_dead_letter_topic(
    world: MemoryWorld, agent: SettlementAgent
) -> None:
    paid = invoice_paid(paid_invoice())
    await agent.handle(message(paid))
    # Another InvoicePaid for the invoice (another id, another cause): a defect upstream.
    forged = paid.model_copy(
        update={"event_id": paid.event_id.__class__(int=1), "causation_id": "other"}
    )
    await agent.handle(message(forged))

    [record] = world.dead_letter_topics.records(TOPIC)
    assert (record["agent"], record["error_type"]) == ("settlement_agent", "AlreadyExists")
    settlement = world.tables.settlements.get("inv_paid_1")
    assert settlement is not None
    assert world.ledger.times_booked == {settlement.settlement_id: 1}


async def test_a_ledger_outage_is_waited_out_not_dead_lettered(
    world: MemoryWorld, agent: SettlementAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    book = world.ledger.book_settlement

    async def flaky(settlement):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("PostgreSQL restarting")
        return await book(settlement)

    monkeypatch.setattr(world.ledger, "book_settlement", flaky)
    await agent.handle(message(invoice_paid(paid_invoice())))
    assert calls == 3
    assert world.publisher.event_types() == ["SettlementCreated", "SettlementCompleted"]
    assert world.dead_letter_topics.records() == []


@pytest.mark.parametrize(
    "value", [b"not json", b'{"event_type": "InvoicePaid"}', b'{"event_type": "Unknown"}']
)
async def test_a_malformed_event_goes_to_the_dead_letter_topic(
    world: MemoryWorld, agent: SettlementAgent, value: bytes
) -> None:
    await agent.handle(FakeEvent(TOPIC, value, key=b"inv_x"))
    [record] = world.dead_letter_topics.records(TOPIC)
    assert (record["agent"], record["error_type"]) == ("settlement_agent", "ValidationError")
    assert record["value"] == {"text": value.decode()}
    assert world.ledger.bookings == {}


async def test_a_reorg_after_settlement_reverses_it_and_the_transfer_included_again_settles_once(
    world: MemoryWorld, agent: SettlementAgent
) -> None:
    scenario = Scenario(invoice_id="inv_reorg_1", amount="9.99")  # 1 confirmation
    payment = scenario.pay("9.99", n=21)
    scenario.confirmations(payment, 1)
    for event in scenario.events:
        await agent.handle(message(event))
    first = world.tables.settlements.get("inv_reorg_1")
    assert first is not None and first.status is SettlementStatus.COMPLETED
    merchant = f"merchant:{first.merchant_id}"
    assert world.ledger.credits[merchant] == 9_890_000

    # A reorg deeper than its one confirmation: the payment is orphaned after settlement.
    reorged = scenario.orphan(payment)
    for event in reorged:
        await agent.handle(message(event))
    reversed_ = world.tables.settlements.get("inv_reorg_1")
    assert reversed_ is not None and reversed_.status is SettlementStatus.REVERSED
    assert reversed_.settlement_id == first.settlement_id
    assert (world.ledger.credits[merchant], world.ledger.credits["platform_fees"]) == (0, 0)
    reversal = reversed_.history[-1]
    assert isinstance(reversal, SettlementReversed) and reversal.data.payment_id == payment
    assert (
        reversal.data.reference
        == world.ledger.bookings[f"reversal:{first.settlement_id}"].reference
    )
    assert world.dead_letter_topics.records() == []

    # Included again two blocks later: paid again, settled again in round 2, once.
    before = len(scenario.events)
    included = scenario.pay("9.99", n=21, block=BLOCK + 2)
    assert included == payment
    scenario.confirmations(payment, 1)
    for event in scenario.events[before:]:
        await agent.handle(message(event))
    second = world.tables.settlements.get("inv_reorg_1")
    assert second is not None and second.status is SettlementStatus.COMPLETED
    assert (second.settlement_round, second.gross_amount) == (2, 9_990_000)
    assert second.settlement_id != first.settlement_id
    assert world.ledger.credits[merchant] == 9_890_000

    # Every event delivered again, in order: nothing booked twice, nothing new.
    booked = dict(world.ledger.times_booked)
    published = len(world.publisher.events)
    for event in scenario.events:
        await agent.handle(message(event))
    assert world.ledger.credits[merchant] == 9_890_000
    assert world.tables.settlements.get("inv_reorg_1") == second
    assert world.ledger.times_booked == booked  # the ledger was not even asked again
    assert world.dead_letter_topics.records() == []
    assert len(world.publisher.events) > published  # round 2's history re-sent, same ids

    # Round 1's reversal delivered again after round 2 exists (its first send may have failed
    # while round 2's table write went through): round 1's history is published again.
    world.publisher.clear()
    for event in reorged:
        await agent.handle(message(event))
    assert [event.event_id for event in world.publisher.events] == [
        event.event_id for event in reversed_.history
    ]
    assert world.tables.settlements.get("inv_reorg_1") == second  # the latest round still shown
    assert world.ledger.times_booked == booked
    assert world.dead_letter_topics.records() == []
