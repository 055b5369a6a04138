"""A merchant user's notification preferences through the HTTP views over the real service
(in-memory ports): the defaults, a change that keeps what it does not name, the refusals, and
that they are the user's own (another user, an API key, an admin)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.support.fakes import MemoryWorld

from .conftest import SHOP

pytestmark = pytest.mark.component

PATH = "/api/v1/notification-preferences"
PASSWORD = "correct horse battery staple"


async def signed_in(client: TestClient, world: MemoryWorld, email: str, role: str,
                    merchant: str | None = "mer_shop") -> dict[str, str]:  # fmt: skip
    await world.services.users.create_user(
        email=email, password=PASSWORD, role=role, merchant_id=merchant
    )
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status == 200, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['access_token']}"}


async def error_of(response: Any) -> dict[str, Any]:
    return dict((await response.json())["error"])


async def test_a_user_starts_with_the_defaults(client: TestClient, world: MemoryWorld) -> None:
    owner = await signed_in(client, world, "owner@shop.example", "owner")
    response = await client.get(PATH, headers=owner)
    assert response.status == 200
    body = await response.json()
    assert body["email"] == [
        "payment_exception",
        "payout_finished",
        "refund_finished",
        "webhook_endpoint_disabled",
    ]
    assert "invoice_paid" in body["telegram"] and "daily_summary" not in body["telegram"]
    assert (body["sms"], body["sms_number"]) == ([], None)
    assert "daily_summary" in body["notices"]


async def test_a_change_replaces_the_channels_named_and_keeps_the_rest(
    client: TestClient, world: MemoryWorld
) -> None:
    viewer = await signed_in(client, world, "viewer@shop.example", "viewer")
    before = await (await client.get(PATH, headers=viewer)).json()
    changed = await client.patch(
        PATH,
        json={"email": ["invoice_paid", "daily_summary"], "sms": ["payout_finished"],
              "sms_number": "+4915112345678"},
        headers=viewer,
    )  # fmt: skip
    assert changed.status == 200, await changed.text()
    body = await changed.json()
    assert body["email"] == ["daily_summary", "invoice_paid"]
    assert (body["sms"], body["sms_number"]) == (["payout_finished"], "+4915112345678")
    assert body["telegram"] == before["telegram"]
    assert await (await client.get(PATH, headers=viewer)).json() == body

    # Turning a channel off is an empty list; the number goes only with the SMS notices.
    off = await client.patch(PATH, json={"telegram": []}, headers=viewer)
    assert (await off.json())["telegram"] == []
    refused = await client.patch(PATH, json={"sms_number": None}, headers=viewer)
    assert refused.status == 400
    assert (await error_of(refused))["param"] == "sms_number"
    cleared = await client.patch(PATH, json={"sms": [], "sms_number": None}, headers=viewer)
    assert ((await cleared.json())["sms"], (await cleared.json())["sms_number"]) == ([], None)


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({}, "email", "at least one channel"),
        ({"fax": ["invoice_paid"]}, "fax", "unknown parameter 'fax'"),
        ({"email": ["invoice_refunded"]}, "email", "no notice 'invoice_refunded'"),
        ({"email": "invoice_paid"}, "email", "must be a list"),
        ({"email": ["invoice_paid"] * 8}, "email", "at most 7"),
        ({"telegram": [7]}, "telegram", "must be a list"),
        ({"sms": ["invoice_paid"]}, "sms_number", "give an sms_number"),
        ({"sms_number": "015112345678"}, "sms_number", "E.164"),
        ({"sms_number": "+49" + "1" * 40}, "sms_number", "international number"),
        ({"sms_number": 4915112345678}, "sms_number", "international number"),
    ],
)
async def test_a_wrong_change_is_refused_naming_the_field_and_changes_nothing(
    client: TestClient, world: MemoryWorld, body: dict[str, Any], param: str, words: str
) -> None:
    owner = await signed_in(client, world, "owner@shop.example", "owner")
    before = await (await client.get(PATH, headers=owner)).json()
    response = await client.patch(PATH, json=body, headers=owner)
    assert response.status == 400, await response.text()
    error = await error_of(response)
    assert error["param"] == param and words in error["message"]
    assert await (await client.get(PATH, headers=owner)).json() == before


async def test_preferences_are_each_users_own(client: TestClient, world: MemoryWorld) -> None:
    owner = await signed_in(client, world, "owner@shop.example", "owner")
    colleague = await signed_in(client, world, "dev@shop.example", "developer")
    await client.patch(PATH, json={"email": []}, headers=owner)
    assert (await (await client.get(PATH, headers=owner)).json())["email"] == []
    assert (await (await client.get(PATH, headers=colleague)).json())["email"] != []


@pytest.mark.parametrize("method", ["get", "patch"])
async def test_an_api_key_or_an_admin_has_no_preferences(
    client: TestClient, world: MemoryWorld, method: str
) -> None:
    admin = await signed_in(client, world, "admin@platform.example", "admin", merchant=None)
    for headers in (SHOP, admin):
        response = await client.request(method, PATH, headers=headers, json={"email": []})
        assert response.status == 403
        assert (await error_of(response))["code"] == "notification_preferences_need_a_user"
    assert (await client.get(PATH)).status == 401
