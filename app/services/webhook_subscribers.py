"""Who is subscribed to a merchant's events, cached per merchant while change news is heard.

The webhook fan-out asks for every domain event (about ten per invoice); without a cache, each
was a PostgreSQL query on the pool the money path uses — the largest single query count under
load (docs/benchmarks.md). A merchant's endpoints change rarely, and every change (create,
update, delete, disable) is announced to every worker on the access-changes channel
(``webhooks:<merchant id>``), so each worker keeps the merchant's enabled endpoints for up to
``CACHE_SECONDS`` and drops them on the news. While a worker is not sure to hear (Redis down,
not yet subscribed) it asks PostgreSQL every time, as before.

An endpoint changed while an event is being fanned out may or may not get that event, with or
without the cache; the cache adds only the news's travel time (milliseconds) to that window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, Protocol

from app.domain.webhooks import WebhookEndpoint
from app.services.ports import AccessChanges, WebhookSubscriptions

CACHE_SECONDS: Final = 30.0
MAX_MERCHANTS: Final = 10_000  # cleared whole when full: a flood of merchants cannot grow it
SUBJECT_PREFIX: Final = "webhooks:"


class EnabledEndpoints(Protocol):
    async def enabled_endpoints(self, merchant_id: str) -> list[WebhookEndpoint]:
        """Every enabled endpoint of the merchant, whatever it subscribes to."""
        ...


def subject_of(merchant_id: str) -> str:
    """The access-changes subject announcing that a merchant's endpoints changed."""
    return f"{SUBJECT_PREFIX}{merchant_id}"


class CachedSubscriptions(WebhookSubscriptions):
    def __init__(
        self,
        store: EnabledEndpoints,
        news: AccessChanges,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._news = news
        self._clock = clock
        self._cached: dict[str, tuple[float, list[WebhookEndpoint]]] = {}
        self._generation = 0  # bumped by every forget: a read racing with news is not kept

    async def subscribers(self, merchant_id: str, event_type: str) -> list[WebhookEndpoint]:
        endpoints = await self._endpoints(merchant_id)
        return [endpoint for endpoint in endpoints if endpoint.wants(event_type)]

    async def _endpoints(self, merchant_id: str) -> list[WebhookEndpoint]:
        if not self._news.healthy:
            return await self._store.enabled_endpoints(merchant_id)
        held = self._cached.get(merchant_id)
        if held is not None and held[0] > self._clock():
            return held[1]
        generation = self._generation
        endpoints = await self._store.enabled_endpoints(merchant_id)
        if generation == self._generation and self._news.healthy:
            if len(self._cached) >= MAX_MERCHANTS:
                self._cached.clear()
            self._cached[merchant_id] = (self._clock() + CACHE_SECONDS, endpoints)
        return endpoints

    def forget(self, subject: str) -> None:
        """Drop a merchant's endpoints on ``webhooks:<merchant id>``; everything on ``*``."""
        if subject == "*":
            self._generation += 1
            self._cached.clear()
        elif subject.startswith(SUBJECT_PREFIX):
            self._generation += 1
            self._cached.pop(subject.removeprefix(SUBJECT_PREFIX), None)

    async def changed(self, merchant_id: str) -> None:
        """A merchant's endpoints changed here: forget them, and tell every other worker."""
        self.forget(subject_of(merchant_id))
        await self._news.announce(subject_of(merchant_id))
