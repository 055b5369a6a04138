"""Sends a merchant asks for (test events, redeliveries, replays) have per-merchant quotas;
a replay is accepted at once and queued in the background."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from app.services.rate_limits import Rate
from app.settings import Settings
from tests.support.fakes import TEST_PEPPER, MemoryWorld, memory_world

from .conftest import OTHER, SHOP

pytestmark = pytest.mark.component


@pytest.fixture
def world() -> MemoryWorld:
    return memory_world(
        Settings(
            api_key_pepper=TEST_PEPPER,
            webhook_test_quota=Rate(2, 3600.0),
            webhook_replay_quota=Rate(1, 3600.0),
        )
    )


async def endpoint(client: TestClient, headers: dict[str, str]) -> str:
    created = await client.post(
        "/api/v1/webhook-endpoints", json={"url": "https://hooks.example/in"}, headers=headers
    )
    assert created.status == 201, await created.text()
    return str((await created.json())["id"])


async def test_test_events_stop_at_the_quota_for_that_merchant_only(client: TestClient) -> None:
    mine, theirs = await endpoint(client, SHOP), await endpoint(client, OTHER)
    sent = [
        await client.post(f"/api/v1/webhook-endpoints/{mine}/test", headers=SHOP) for _ in range(3)
    ]
    assert [answer.status for answer in sent] == [202, 202, 429]
    error = (await sent[-1].json())["error"]
    assert error["code"] == "quota_exceeded" and "test" in error["message"]
    assert int(sent[-1].headers["Retry-After"]) > 0
    other = await client.post(f"/api/v1/webhook-endpoints/{theirs}/test", headers=OTHER)
    assert other.status == 202


async def test_a_replay_is_accepted_at_once_and_followed_by_its_id(
    client: TestClient, world: MemoryWorld
) -> None:
    world.webhooks.events.extend(
        {"event_type": kind, "event_id": str(n)}
        for n, kind in enumerate(["InvoiceCreated", "InvoicePaid", "SettlementCompleted"])
    )
    mine = await endpoint(client, SHOP)
    await client.patch(
        f"/api/v1/webhook-endpoints/{mine}", json={"event_types": ["Invoice*"]}, headers=SHOP
    )
    body = {"from": "2026-01-01T00:00:00Z", "to": "2026-12-31T00:00:00Z"}
    replay_url = f"/api/v1/webhook-endpoints/{mine}/replay"
    accepted = await client.post(replay_url, json=body, headers=SHOP)
    assert accepted.status == 202
    replay = await accepted.json()
    assert (replay["status"], replay["deliveries"], replay["queued"]) == ("queued", 2, 0)
    followed = await client.get(f"/api/v1/webhook-replays/{replay['id']}", headers=SHOP)
    assert (await followed.json())["id"] == replay["id"]
    theirs = await client.get(f"/api/v1/webhook-replays/{replay['id']}", headers=OTHER)
    assert theirs.status == 404
    again = await client.post(replay_url, json=body, headers=SHOP)
    assert again.status == 429
