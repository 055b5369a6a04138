"""Self-service sign-up (app/services/signup.py) through the API and the dashboard: the emailed
link before the first API key, invitation codes, the closed mode."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.bootstrap import install_edge, install_views
from app.runtime.worker_signatures import WorkerSignatures
from app.settings import Settings
from tests.component.web.test_dashboard import csrf_of
from tests.support.fakes import (
    TEST_PEPPER,
    LocalRouting,
    MemoryWorld,
    RecordingMailer,
    memory_world,
)

pytestmark = pytest.mark.component

PASSWORD = "a long enough password"
_LINK = re.compile(r"https?://\S+/dashboard/verify\?token=(ver_\S+)")


def world_in(mode: str) -> MemoryWorld:
    return memory_world(Settings(api_key_pepper=TEST_PEPPER, signup_mode=mode))  # type: ignore[arg-type]


def client_of(world: MemoryWorld) -> TestClient:
    """A test client on ``world``, wired as tests/component/web/conftest.py wires its own."""
    app = web.Application()
    secret = WorkerSignatures(world.settings.internal_secret)
    limits = install_edge(app, world.services, world.settings, secret)
    install_views(app, world.services, LocalRouting(), world.settings, limits=limits)
    return TestClient(TestServer(app))


@pytest.fixture
def world() -> MemoryWorld:
    return world_in("open")


def mailer(world: MemoryWorld) -> RecordingMailer:
    found = world.ports.mailer
    assert isinstance(found, RecordingMailer)
    return found


async def sign_up(client: TestClient, **fields: Any) -> Any:
    body = {"business_name": "Mug & Co", "email": "Founder@Mugs.example", "password": PASSWORD}
    return await client.post("/api/v1/signup", json={**body, **fields})


async def bearer(client: TestClient, email: str) -> dict[str, str]:
    session = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert session.status == 200, await session.text()
    return {"Authorization": f"Bearer {(await session.json())['access_token']}"}


async def test_an_owner_confirms_the_emailed_link_before_the_first_api_key(
    client: TestClient, world: MemoryWorld
) -> None:
    assert (await (await client.get("/api/v1/signup")).json())["mode"] == "open"
    answer = await sign_up(client)
    assert answer.status == 201, await answer.text()
    signed_up = await answer.json()
    assert (signed_up["email"], signed_up["verification_email"]) == ("founder@mugs.example", "sent")
    (email,) = mailer(world).sent
    assert email.to == "founder@mugs.example" and "Mug &amp; Co" in email.html
    token = _LINK.search(email.text)
    assert token, email.text

    owner = await bearer(client, "founder@mugs.example")
    me = await (await client.get("/api/v1/auth/me", headers=owner)).json()
    assert (me["role"], me["email_verified"]) == ("owner", False)
    key = {"name": "shop", "scopes": ["invoices:write"]}
    refused = await client.post("/api/v1/api-keys", json=key, headers=owner)
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "email_not_verified"

    verified = await client.post("/api/v1/signup/verify", json={"token": token.group(1)})
    assert verified.status == 200, await verified.text()
    again = await client.post("/api/v1/signup/verify", json={"token": token.group(1)})
    assert again.status == 400  # once
    # No wait: confirming made every worker forget the cached, unverified owner.
    created = await client.post("/api/v1/api-keys", json=key, headers=owner)
    assert created.status == 201, await created.text()


async def test_sign_up_refuses_what_it_must(client: TestClient, world: MemoryWorld) -> None:
    assert (await sign_up(client)).status == 201
    taken = await sign_up(client, business_name="Another")
    assert taken.status == 409  # the email has an account
    for fields, param in [
        ({"business_name": ""}, "business_name"),
        ({"email": "not-an-email"}, "email"),
        ({"password": "short"}, "password"),
        ({"plan": "gold"}, "plan"),
    ]:
        answer = await sign_up(client, **{"email": "x@mugs.example", **fields})
        assert answer.status == 400, fields
        assert (await answer.json())["error"]["param"] == param
    bad = await client.post(
        "/api/v1/signup/verify", json={"token": "ver_0123456789abcdef_" + "x" * 30}
    )
    assert bad.status == 400
    assert (await bad.json())["error"]["code"] == "verification_invalid"


async def test_a_failed_email_leaves_the_account_and_a_new_link_can_be_asked_for(
    client: TestClient, world: MemoryWorld
) -> None:
    mailer(world).failing = True
    answer = await sign_up(client)
    assert (answer.status, (await answer.json())["verification_email"]) == (201, "failed")
    mailer(world).failing = False
    unknown = await client.post("/api/v1/signup/resend", json={"email": "nobody@mugs.example"})
    known = await client.post("/api/v1/signup/resend", json={"email": "founder@mugs.example"})
    assert unknown.status == known.status == 202  # the answer never tells who has an account
    assert await unknown.json() == await known.json()
    (email,) = mailer(world).sent
    assert email.to == "founder@mugs.example"


async def test_by_invitation_only_a_valid_unused_code_opens_an_account() -> None:
    world = world_in("invite")
    code, _ = await world.services.signup.invite(
        note="Mug & Co", expires_in=__import__("datetime").timedelta(days=1)
    )
    async with client_of(world) as client:
        missing = await sign_up(client)
        assert missing.status == 403
        assert (await missing.json())["error"]["code"] == "signup_invitation_invalid"
        wrong = await sign_up(client, invitation=code[:-4] + "abcd")
        assert wrong.status == 403
        assert (await sign_up(client, invitation=code)).status == 201
        reused = await sign_up(client, email="second@mugs.example", invitation=code)
        assert reused.status == 403


async def test_when_closed_nobody_signs_up_and_the_dashboard_says_so() -> None:
    world = world_in("closed")
    async with client_of(world) as client:
        closed = await sign_up(client)
        assert closed.status == 403
        assert (await closed.json())["error"]["code"] == "signup_closed"
        page = await (await client.get("/dashboard/signup")).text()
        assert 'id="signup-closed"' in page
        assert "/dashboard/signup" not in await (await client.get("/dashboard/login")).text()


async def test_signing_up_in_the_dashboard_then_confirming_from_the_email(
    client: TestClient, world: MemoryWorld
) -> None:
    token = await csrf_of(client, "/dashboard/signup")
    done = await client.post(
        "/dashboard/signup",
        data={
            "csrf": token,
            "business_name": "Mug & Co",
            "email": "founder@mugs.example",
            "password": PASSWORD,
        },
    )
    assert done.status == 200
    assert "Check your email" in await done.text()
    link = _LINK.search(mailer(world).sent[0].text)
    assert link
    page = await client.get(f"/dashboard/verify?token={link.group(1)}")
    assert 'id="confirm-email"' in await page.text()
    confirmed = await client.post(
        "/dashboard/verify",
        data={"csrf": await csrf_of(client, "/dashboard/signup"), "token": link.group(1)},
        allow_redirects=False,
    )
    assert confirmed.headers["Location"] == "/dashboard/login?notice=email_verified"
