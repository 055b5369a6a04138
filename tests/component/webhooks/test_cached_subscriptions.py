"""A merchant's webhook subscribers are cached per worker and dropped on news of a change."""

from __future__ import annotations

import pytest

from app.domain.webhooks import endpoint_disabled_event
from app.services.webhook_subscribers import CACHE_SECONDS, CachedSubscriptions, subject_of
from tests.support.fakes import MemoryAccessChanges, MemoryWebhookStore, MemoryWorld, memory_world
from tests.unit.domain.factories import MERCHANT_ID, T0

pytestmark = pytest.mark.component


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world() -> MemoryWorld:
    return memory_world()


@pytest.fixture
def store() -> MemoryWebhookStore:
    return MemoryWebhookStore()


@pytest.fixture
def news() -> MemoryAccessChanges:
    return MemoryAccessChanges()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cached(
    store: MemoryWebhookStore, news: MemoryAccessChanges, clock: Clock
) -> CachedSubscriptions:
    return CachedSubscriptions(store, news, clock=clock)


async def test_one_query_per_merchant_serves_every_event_type(
    store: MemoryWebhookStore, cached: CachedSubscriptions
) -> None:
    invoices = store.add_endpoint(MERCHANT_ID, ["Invoice*"])
    payments = store.add_endpoint(MERCHANT_ID, ["Payment*"])
    assert await cached.subscribers(MERCHANT_ID, "InvoicePaid") == [invoices]
    assert await cached.subscribers(MERCHANT_ID, "PaymentDetected") == [payments]
    assert await cached.subscribers(MERCHANT_ID, "SettlementCreated") == []
    assert store.enabled_endpoints_calls == 1


async def test_news_of_a_change_drops_the_merchant_and_a_stale_entry_expires(
    store: MemoryWebhookStore, cached: CachedSubscriptions, clock: Clock
) -> None:
    assert await cached.subscribers(MERCHANT_ID, "InvoicePaid") == []
    added = store.add_endpoint(MERCHANT_ID, ["*"])  # on another worker: not seen yet
    assert await cached.subscribers(MERCHANT_ID, "InvoicePaid") == []
    cached.forget(subject_of(MERCHANT_ID))  # its news arrives
    assert await cached.subscribers(MERCHANT_ID, "InvoicePaid") == [added]

    other = store.add_endpoint(MERCHANT_ID, ["*"])  # news lost: the entry still expires
    clock.now += CACHE_SECONDS + 0.1
    assert await cached.subscribers(MERCHANT_ID, "InvoicePaid") == [added, other]
    cached.forget("*")  # the listener subscribed again: everything may be stale
    cached.forget("key:k_1")  # someone else's news changes nothing
    assert await cached.subscribers(MERCHANT_ID, "InvoicePaid") == [added, other]
    assert store.enabled_endpoints_calls == 4


async def test_nothing_is_cached_while_the_news_cannot_be_heard(
    store: MemoryWebhookStore, news: MemoryAccessChanges, cached: CachedSubscriptions
) -> None:
    news.healthy = False
    await cached.subscribers(MERCHANT_ID, "InvoicePaid")
    added = store.add_endpoint(MERCHANT_ID, ["*"])
    assert await cached.subscribers(MERCHANT_ID, "InvoicePaid") == [added]
    assert store.enabled_endpoints_calls == 2


async def test_news_arriving_during_a_read_keeps_that_read_out_of_the_cache(
    store: MemoryWebhookStore, cached: CachedSubscriptions
) -> None:
    real = store.enabled_endpoints

    async def read_then_hear_news(merchant_id: str) -> list:  # type: ignore[type-arg]
        endpoints = await real(merchant_id)
        cached.forget(subject_of(merchant_id))  # the change landed after our SELECT
        return endpoints

    store.enabled_endpoints = read_then_hear_news  # type: ignore[method-assign]
    await cached.subscribers(MERCHANT_ID, "InvoicePaid")
    store.enabled_endpoints = real  # type: ignore[method-assign]
    added = store.add_endpoint(MERCHANT_ID, ["*"])
    assert await cached.subscribers(MERCHANT_ID, "InvoicePaid") == [added]


async def test_endpoint_changes_are_announced_to_every_worker(world: MemoryWorld) -> None:
    from app.domain.webhooks import EndpointSettings

    endpoints = world.services.webhook_endpoints
    settings = EndpointSettings(url="https://shop.example/hooks", event_types=("*",))
    endpoint, _ = await endpoints.create(MERCHANT_ID, settings)
    await endpoints.update(MERCHANT_ID, endpoint.endpoint_id, {"description": "orders"})
    await endpoints.delete(MERCHANT_ID, endpoint.endpoint_id)
    news = world.services.ports.access_changes
    assert news.announced == [subject_of(MERCHANT_ID)] * 3  # type: ignore[attr-defined]


async def test_an_endpoint_disabled_by_the_dispatcher_is_announced_when_its_event_fans_out(
    world: MemoryWorld,
) -> None:
    endpoint = world.webhooks.add_endpoint(MERCHANT_ID, ["*"])
    disabled = endpoint_disabled_event(
        endpoint_id=endpoint.endpoint_id,
        endpoint_version=2,
        merchant_id=MERCHANT_ID,
        url=endpoint.url,
        failing_since=T0,
        disabled_at=T0,
    )
    await world.services.webhook_fanout.fan_out(disabled.model_dump_json().encode())
    news = world.services.ports.access_changes
    assert news.announced == [subject_of(MERCHANT_ID)]  # type: ignore[attr-defined]
