"""Linking a Telegram chat and reading one's notices over HTTP (web/notifications_api.py), over
the real services with in-memory ports: the one-time link and its deep link, the linked chat,
unlinking, the deliveries list, and that all of it is a merchant user's own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from app.domain.invoice import handle_invoice
from app.domain.notifications import Channel, Notice, NotificationPreferences
from app.settings import Settings
from tests.support.fakes import TEST_PEPPER, MemoryNotices, MemoryWorld, memory_world
from tests.unit.domain.factories import confirmed, create_invoice, detected, usdt

from .conftest import SHOP

pytestmark = pytest.mark.component

PATH = "/api/v1/notification-preferences"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def world(request: pytest.FixtureRequest) -> MemoryWorld:
    """The memory world, with the settings a test names by ``indirect`` parametrization."""
    return memory_world(getattr(request, "param", None))


async def signed_in(
    client: TestClient, world: MemoryWorld, email: str, role: str, merchant: str | None = "mer_shop"
) -> tuple[str, dict[str, str]]:
    user = await world.services.users.create_user(
        email=email, password=PASSWORD, role=role, merchant_id=merchant
    )
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status == 200, await response.text()
    return user.user_id, {"Authorization": f"Bearer {(await response.json())['access_token']}"}


async def error_of(response: Any) -> dict[str, Any]:
    return dict((await response.json())["error"])


def notices_of(world: MemoryWorld) -> MemoryNotices:
    store = world.ports.notices
    assert isinstance(store, MemoryNotices)
    return store


async def test_a_link_is_offered_for_thirty_minutes_and_links_the_chat_once(
    client: TestClient, world: MemoryWorld
) -> None:
    _, owner = await signed_in(client, world, "owner@shop.example", "owner")
    before = datetime.now(UTC)
    response = await client.post(f"{PATH}/telegram-link", headers=owner)

    assert response.status == 201, await response.text()
    body = await response.json()
    token = body["token"]
    assert body["command"] == f"/start {token}"
    assert body["deep_link"] is None  # TELEGRAM_BOT_USERNAME is not set
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert before + timedelta(minutes=29) < expires_at <= datetime.now(UTC) + timedelta(minutes=30)
    assert 1 <= len(token) <= 64  # what Telegram's start parameter allows

    links = world.services.telegram_links
    assert await links.link(token, 4242, "shopkeeper") is not None
    assert await links.link(token, 5353, "someone_else") is None


@pytest.mark.parametrize(
    "world",
    [Settings(api_key_pepper=TEST_PEPPER, telegram_bot_username="checkout_bot")],
    indirect=True,
)
async def test_with_the_bots_name_the_offer_has_a_deep_link(
    client: TestClient, world: MemoryWorld
) -> None:
    _, viewer = await signed_in(client, world, "viewer@shop.example", "viewer")
    body = await (await client.post(f"{PATH}/telegram-link", headers=viewer)).json()
    assert body["deep_link"] == f"https://t.me/checkout_bot?start={body['token']}"


async def test_the_linked_chat_is_shown_and_unlinked(
    client: TestClient, world: MemoryWorld
) -> None:
    _, owner = await signed_in(client, world, "owner@shop.example", "owner")

    missing = await client.get(f"{PATH}/telegram", headers=owner)
    assert missing.status == 404
    assert (await error_of(missing))["code"] == "telegram_not_linked"
    not_linked = await client.delete(f"{PATH}/telegram", headers=owner)
    assert not_linked.status == 404
    assert (await error_of(not_linked))["code"] == "telegram_not_linked"

    token = (await (await client.post(f"{PATH}/telegram-link", headers=owner)).json())["token"]
    assert await world.services.telegram_links.link(token, 4242, "shopkeeper") is not None
    shown = await client.get(f"{PATH}/telegram", headers=owner)
    assert shown.status == 200
    chat = await shown.json()
    assert (chat["chat_id"], chat["username"]) == (4242, "shopkeeper")
    assert datetime.fromisoformat(chat["linked_at"]).tzinfo is not None

    unlinked = await client.delete(f"{PATH}/telegram", headers=owner)
    assert unlinked.status == 204
    assert (await client.get(f"{PATH}/telegram", headers=owner)).status == 404
    assert await world.services.telegram_links.chat_user(4242) is None
    assert (await client.delete(f"{PATH}/telegram", headers=owner)).status == 404


async def test_a_chat_is_each_users_own(client: TestClient, world: MemoryWorld) -> None:
    _, owner = await signed_in(client, world, "owner@shop.example", "owner")
    _, dev = await signed_in(client, world, "dev@shop.example", "developer")
    token = (await (await client.post(f"{PATH}/telegram-link", headers=owner)).json())["token"]
    await world.services.telegram_links.link(token, 4242, None)

    assert (await client.get(f"{PATH}/telegram", headers=dev)).status == 404
    assert (await client.delete(f"{PATH}/telegram", headers=dev)).status == 404
    assert (await client.get(f"{PATH}/telegram", headers=owner)).status == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", f"{PATH}/telegram-link"),
        ("get", f"{PATH}/telegram"),
        ("delete", f"{PATH}/telegram"),
    ],
)
async def test_an_api_key_or_an_admin_links_no_chat(
    client: TestClient, world: MemoryWorld, method: str, path: str
) -> None:
    _, admin = await signed_in(client, world, "admin@platform.example", "admin", merchant=None)
    for headers in (SHOP, admin):
        response = await client.request(method, path, headers=headers)
        assert response.status == 403, await response.text()
        assert (await error_of(response))["code"] == "telegram_link_needs_a_user"
    assert notices_of(world).tokens == {}
    assert (await client.request(method, path)).status == 401


async def test_the_deliveries_list_the_users_own_notices(
    client: TestClient, world: MemoryWorld
) -> None:
    owner_id, owner = await signed_in(client, world, "owner@shop.example", "owner")
    dev_id, dev = await signed_in(client, world, "dev@shop.example", "developer")
    everything = frozenset(Notice)
    await world.ports.notification_preferences.put(
        owner_id, "mer_shop", NotificationPreferences({Channel.EMAIL: everything})
    )
    notices_of(world).chats[dev_id] = (777, None)  # the defaults: invoice_paid by Telegram
    messages = []
    for invoice_id in ("inv_a", "inv_b"):
        invoice, _ = handle_invoice(
            None, create_invoice(invoice_id=invoice_id, merchant_id="mer_shop")
        )
        invoice, _ = handle_invoice(invoice, detected("p1", usdt("9.99"), invoice_id=invoice_id))
        _, [_, paid] = handle_invoice(invoice, confirmed("p1", usdt("9.99"), invoice_id=invoice_id))
        messages += await world.services.notice_fanout.notices_for(paid.model_dump_json().encode())
    await world.services.notice_intake.accept_batch(messages)
    mine = [m for m in messages if m.user_id == owner_id]
    assert len(mine) == 2  # invoice_paid by email, of each invoice
    notices_of(world).finished[mine[0].notice_id] = ("sent", None)

    response = await client.get(f"{PATH}/deliveries", headers=owner)
    assert response.status == 200, await response.text()
    rows = (await response.json())["data"]
    assert {r["notice_id"] for r in rows} == {m.notice_id for m in mine}
    by_id = {r["notice_id"]: r for r in rows}
    sent = by_id[mine[0].notice_id]
    assert (sent["channel"], sent["notice"], sent["status"]) == ("email", "invoice_paid", "sent")
    assert datetime.fromisoformat(sent["created_at"]).tzinfo is not None
    assert datetime.fromisoformat(sent["finished_at"]).tzinfo is not None
    assert by_id[mine[1].notice_id]["finished_at"] is None

    limited = await client.get(f"{PATH}/deliveries?limit=1", headers=owner)
    assert len((await limited.json())["data"]) == 1
    assert (await client.get(f"{PATH}/deliveries?limit=0", headers=owner)).status == 400

    # The developer sees their own Telegram notices, none of the owner's.
    theirs = (await (await client.get(f"{PATH}/deliveries", headers=dev)).json())["data"]
    assert [r["channel"] for r in theirs] == ["telegram", "telegram"]
    assert {r["notice_id"] for r in theirs} == {
        m.notice_id for m in messages if m.user_id == dev_id
    }


async def test_an_api_key_has_no_deliveries(client: TestClient, world: MemoryWorld) -> None:
    response = await client.get(f"{PATH}/deliveries", headers=SHOP)
    assert response.status == 403
    assert (await error_of(response))["code"] == "notification_preferences_need_a_user"
