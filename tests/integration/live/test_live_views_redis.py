"""``LiveInvoiceViews`` on the real Redis: atomic merges, pub/sub delivery, TTLs."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from app.adapters.redis.live_views import FINAL_VIEW_TTL, LiveInvoiceViews, state_key
from app.services.live_view import MAINNET_USDT_CONTRACT, View, apply_event, render_view
from tests.unit.live.scenario import Scenario

from .conftest import REDIS_URL

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]


def history(invoice_id: str) -> Scenario:
    scenario = Scenario(invoice_id=invoice_id, amount="150")
    payments = [scenario.pay("50", n=n, block=1_000 + n) for n in range(1, 5)]
    for n, payment in enumerate(payments, start=1):
        scenario.confirmations(payment, 3 + n)
    scenario.orphan(payments[0])
    for payment in payments[1:]:
        scenario.confirmations(payment, 20)
    return scenario


def expected_view(scenario: Scenario) -> View:
    state = None
    for event in scenario.events:
        applied = apply_event(state, event)
        if applied is not None:
            state = applied.state
    view = render_view(state)
    assert view is not None
    return view


def comparable(view: View | None) -> View:
    assert view is not None
    return {
        **view,
        "version": None,
        "payments": sorted(view["payments"], key=lambda p: p["payment_id"]),
    }


async def test_concurrent_applies_from_several_workers_lose_no_update(invoice_id: str) -> None:
    scenario = history(invoice_id)
    # Four "workers", each its own Redis client, each owning some aggregates (partitions) and
    # applying their events in order, all at the same time; every event also redelivered.
    clients = [aioredis.from_url(REDIS_URL) for _ in range(4)]
    workers = [LiveInvoiceViews(client, token_contract=MAINNET_USDT_CONTRACT) for client in clients]
    by_aggregate: dict[str, list] = {}
    for event in scenario.events:
        by_aggregate.setdefault(event.aggregate_id, []).append(event)
    lanes: list[list] = [[] for _ in workers]
    for i, events in enumerate(by_aggregate.values()):
        lanes[i % len(lanes)].extend(events + events[:2])

    async def run(views: LiveInvoiceViews, events: list) -> None:
        for event in events:
            await views.apply(event)
            await asyncio.sleep(random.random() / 1000)

    try:
        async with workers[0].subscribe(invoice_id) as changes:
            await asyncio.gather(*(run(w, lane) for w, lane in zip(workers, lanes, strict=True)))
            final = await workers[0].current(invoice_id)
            assert comparable(final) == comparable(expected_view(scenario))
            assert final is not None
            assert final["status"] == "paid"
            # Every published version arrives once, in order, the last one being the final view.
            received = []
            while not received or received[-1]["version"] < final["version"]:
                received.append(await asyncio.wait_for(changes.next(), 10))
            assert [v["version"] for v in received] == list(range(1, final["version"] + 1))
            assert received[-1] == final
    finally:
        await workers[0].aclose()
        for client in clients:
            await client.aclose()


async def test_subscribers_get_each_published_view_and_current_matches(
    redis_client: aioredis.Redis, invoice_id: str
) -> None:
    views = LiveInvoiceViews(redis_client, token_contract="TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf")
    scenario = Scenario(invoice_id=invoice_id, amount="9.99")
    assert await views.current(invoice_id) is None
    async with views.subscribe(invoice_id) as first, views.subscribe(invoice_id) as second:
        published = await views.apply(scenario.events[0])
        assert published is not None
        assert published["token_contract"] == "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
        assert await asyncio.wait_for(first.next(), 5) == published
        assert await asyncio.wait_for(second.next(), 5) == published
        assert await views.current(invoice_id) == published
        # A redelivery publishes nothing.
        assert await views.apply(scenario.events[0]) is None
    # One subscriber leaving does not end the other's subscription.
    async with views.subscribe(invoice_id) as staying:
        async with views.subscribe(invoice_id):
            pass
        scenario.pay("9.99")
        for event in scenario.events[1:]:
            await views.apply(event)
        final = await views.current(invoice_id)
        assert final is not None and final["status"] == "paid"
        seen = [await asyncio.wait_for(staying.next(), 5) for _ in range(final["version"] - 1)]
        assert seen[-1] == final
    await views.aclose()


async def test_a_final_view_expires_after_days_an_open_one_later(
    views: LiveInvoiceViews, redis_client: aioredis.Redis, invoice_id: str
) -> None:
    scenario = Scenario(invoice_id=invoice_id)
    await views.apply(scenario.events[0])
    open_ttl = await redis_client.ttl(state_key(invoice_id))
    for event in scenario.cancel():
        await views.apply(event)
    final_ttl = await redis_client.ttl(state_key(invoice_id))
    assert final_ttl > FINAL_VIEW_TTL.total_seconds() - timedelta(hours=1).total_seconds()
    assert open_ttl > final_ttl


async def test_payment_events_before_the_invoice_publish_nothing_until_it_appears(
    views: LiveInvoiceViews, invoice_id: str
) -> None:
    scenario = Scenario(invoice_id=invoice_id, amount="150")
    scenario.pay("150")
    payment_events = [e for e in scenario.events if e.aggregate_type == "payment"]
    async with views.subscribe(invoice_id) as changes:
        for event in payment_events:
            assert await views.apply(event) is None
        assert await views.current(invoice_id) is None
        view = await views.apply(scenario.events[0])
        assert view is not None and len(view["payments"]) == 1
        assert await asyncio.wait_for(changes.next(), 5) == view
