"""Owner routing when the worker's producer does not know a table's changelog partitions yet
(app/runtime/routing.py). aiokafka hashes a key to a partition only for a topic it has metadata
for; a worker that had written nothing to the invoices changelog answered every forwarded read
with a 500 (a TypeError deep in aiokafka) for a whole minute in CI. Now the producer is asked for
the partitions first, and a lookup that cannot be done yet is a 503 to retry."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from app.runtime.routing import OwnerRouting, WorkerUnavailable

pytestmark = pytest.mark.component

CHANGELOG = "t1-invoices-changelog"


class Metadata:
    def __init__(self) -> None:
        self.known: set[str] = set()

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(12)) if topic in self.known else None


class Producer:
    """aiokafka's producer as routing uses it: metadata, and asking for a topic's partitions."""

    def __init__(self) -> None:
        self._metadata = Metadata()
        self.asked: list[str] = []

    async def partitions_for(self, topic: str) -> set[int]:
        self.asked.append(topic)
        self._metadata.known.add(topic)
        return set(range(12))


def app(producer: Producer) -> Any:
    def key_store(table: str, key: str) -> str:
        if CHANGELOG not in producer._metadata.known:
            raise TypeError("'NoneType' object is not iterable")  # as aiokafka does
        return "http://127.0.0.1:6066"

    changelog = SimpleNamespace(get_topic_name=lambda: CHANGELOG)
    return SimpleNamespace(
        router=SimpleNamespace(key_store=key_store),
        tables={"invoices": SimpleNamespace(changelog_topic=changelog)},
        producer=SimpleNamespace(_ensure_producer=lambda: producer),
        conf=SimpleNamespace(canonical_url="http://127.0.0.1:6066"),
        rebalancing=False,
    )


async def test_the_changelog_partitions_are_asked_for_before_routing() -> None:
    producer = Producer()
    routing = OwnerRouting(app(producer), signatures=None, read_body=None, client_address=None)  # type: ignore[arg-type]

    async def local(request: web.Request) -> web.StreamResponse:
        return web.Response(text="served here")

    request = make_mocked_request("GET", "/api/v1/invoices/inv_1")
    response = await routing.serve(request, "invoices", "inv_1", local)
    assert producer.asked == [CHANGELOG]
    assert response.status == 200 and response.headers["X-Checkout-Served-By"]
    await routing.serve(request, "invoices", "inv_2", local)
    assert producer.asked == [CHANGELOG]  # known from then on


async def test_a_synchronous_lookup_that_cannot_be_done_yet_is_a_retry_not_an_error() -> None:
    producer = Producer()
    routing = OwnerRouting(app(producer), signatures=None, read_body=None, client_address=None)  # type: ignore[arg-type]
    with pytest.raises(WorkerUnavailable):
        routing.is_local("invoices", "inv_1")
    assert routing._learning is not None
    await routing._learning  # the lookup it started
    assert routing.is_local("invoices", "inv_1") is True
