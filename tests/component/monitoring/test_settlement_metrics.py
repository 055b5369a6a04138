"""The settlement agent moves the business metrics: settlements, volume, fee checks, and the
payment confirmation time read from the domain events it passes over."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from agents.settlements import SettlementAgent
from app.domain.events import DomainEvent, InvoicePaid
from tests.support.fakes import FakeEvent, MemoryWorld, memory_world
from tests.unit.live.scenario import Scenario

pytestmark = pytest.mark.component

TOPIC = "crypto-checkout.domain-events"
NAMES = {
    "completed": ("checkout_settlements_completed_total", {}),
    "gross": ("checkout_settled_usdt_total", {}),
    "fees": ("checkout_platform_fees_usdt_total", {}),
    "match": ("checkout_settlement_fee_checks_total", {"result": "match"}),
    "mismatch": ("checkout_settlement_fee_checks_total", {"result": "mismatch"}),
    "confirmed": ("checkout_payment_confirmation_seconds_count", {}),
}


def samples() -> dict[str, float]:
    return {key: REGISTRY.get_sample_value(*name) or 0.0 for key, name in NAMES.items()}


def message(event: DomainEvent) -> FakeEvent:
    return FakeEvent(TOPIC, event.model_dump_json().encode(), key=event.aggregate_id.encode())


@pytest.fixture
def world() -> MemoryWorld:
    return memory_world()


async def test_a_settled_invoice_moves_every_business_metric_once(world: MemoryWorld) -> None:
    agent = SettlementAgent(world.services.settling, world.dead_letters)
    scenario = Scenario(invoice_id="inv_metrics_1", amount="9.99")
    payment = scenario.pay("9.99")
    scenario.confirmations(payment, scenario.required)
    before = samples()

    for event in scenario.events:
        await agent.handle(message(event))
    paid = next(event for event in scenario.events if isinstance(event, InvoicePaid))
    await agent.handle(message(paid))  # redelivered: settled and measured once

    after = samples()
    assert after["completed"] == before["completed"] + 1
    assert after["gross"] == pytest.approx(before["gross"] + 9.99)
    assert after["fees"] == pytest.approx(before["fees"] + 0.10)  # 1 % of 9.99, half-up
    assert after["match"] == before["match"] + 1
    assert after["mismatch"] == before["mismatch"]
    assert after["confirmed"] == before["confirmed"] + 1
    assert world.dead_letter_topics.records() == []


async def test_a_refused_invoice_paid_counts_no_settlement(world: MemoryWorld) -> None:
    agent = SettlementAgent(world.services.settling, world.dead_letters)
    scenario = Scenario(invoice_id="inv_metrics_2", amount="9.99")
    payment = scenario.pay("9.99")
    scenario.confirmations(payment, scenario.required)
    paid = next(event for event in scenario.events if isinstance(event, InvoicePaid))
    await agent.handle(message(paid))
    before = samples()

    # Another InvoicePaid for the same invoice: refused to the dead-letter topic.
    again = paid.model_copy(
        update={"event_id": paid.event_id.__class__(int=2), "causation_id": "other"}
    )
    await agent.handle(message(again))

    assert samples()["completed"] == before["completed"]
    assert len(world.dead_letter_topics.records()) == 1
    dead = REGISTRY.get_sample_value(
        "checkout_dead_letters_total",
        {"agent": "settlement_agent", "topic": TOPIC, "error": "AlreadyExists"},
    )
    assert dead is not None and dead >= 1  # the failure side of the success rate
