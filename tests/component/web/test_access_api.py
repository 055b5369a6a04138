"""Keys, users, roles, the admin, the audit log and the per-caller rate limits, through the HTTP
views over the real services (in-memory ports)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient

from app.adapters.auth.tokens import TokenIssuer
from app.domain.access import ALL_SCOPES, Scope
from app.services.access import InvalidApiKey
from app.services.rate_limits import Rate
from app.settings import Settings
from tests.support.fakes import SHOP_API_KEY, TEST_PEPPER, MemoryWorld, memory_world
from web.openapi import OPERATION_SCOPES

from .conftest import OTHER, SHOP

pytestmark = pytest.mark.component

PASSWORD = "correct horse battery staple"


@pytest.fixture
def world() -> MemoryWorld:
    return memory_world(
        Settings(
            api_key_pepper=TEST_PEPPER,
            rate_limit_invoice_create=Rate(3, 60.0),
            login_failures_per_account=Rate(3, 3600.0),
        )
    )


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


async def new_key(client: TestClient, scopes: list[str], **extra: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/api-keys", json={"name": "test key", "scopes": scopes, **extra}, headers=SHOP
    )
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def error_of(response: Any) -> dict[str, Any]:
    return dict((await response.json())["error"])


# --- scopes -----------------------------------------------------------------------------------


async def test_every_operation_refuses_a_key_without_its_scope(client: TestClient) -> None:
    """For each operation of /openapi.json that names a scope: a key holding every other scope
    gets 403 insufficient_scope naming it — the document and the views agree."""
    keys: dict[Scope, str] = {}
    for scope in set(OPERATION_SCOPES.values()):
        others = sorted(s.value for s in ALL_SCOPES - {scope})
        keys[scope] = (await new_key(client, others))["secret"]
    for (method, path), scope in OPERATION_SCOPES.items():
        url = path.format_map(_Anything())
        response = await client.request(method.upper(), url, headers=bearer(keys[scope]), json={})
        assert response.status == 403, (method, path, await response.text())
        error = await error_of(response)
        assert (error["code"], error["param"]) == ("insufficient_scope", scope.value), (
            method,
            path,
        )


class _Anything(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return f"x_{key}"


async def test_a_key_cannot_grant_scopes_it_does_not_hold(client: TestClient) -> None:
    reader = await new_key(client, ["invoices:read", "keys:write"])
    response = await client.post(
        "/api/v1/api-keys",
        json={"name": "escalation", "scopes": ["invoices:read", "invoices:write"]},
        headers=bearer(reader["secret"]),
    )
    assert response.status == 403
    assert (await error_of(response))["param"] == "invoices:write"


async def test_unknown_scopes_and_bad_names_are_named(client: TestClient) -> None:
    for body, param in (
        ({"name": "k", "scopes": ["invoices:delete"]}, "scopes"),
        ({"name": "k", "scopes": []}, "scopes"),
        ({"name": "k", "scopes": "invoices:read"}, "scopes"),
        ({"name": "a\x00b", "scopes": ["invoices:read"]}, "name"),
        ({"name": "k", "scopes": ["invoices:read"], "expires_at": "2020-01-01T00:00:00Z"}, None),
        ({"name": "k", "scopes": ["invoices:read"], "colour": "red"}, "colour"),
    ):
        response = await client.post("/api/v1/api-keys", json=body, headers=SHOP)
        assert response.status == 400, body
        if param is not None:
            assert (await error_of(response))["param"] == param


# --- the key's life ---------------------------------------------------------------------------


async def test_a_key_is_shown_once_listed_without_secret_and_revoked(client: TestClient) -> None:
    key = await new_key(client, ["invoices:read"])
    assert key["secret"].startswith("ck_") and key["scopes"] == ["invoices:read"]
    assert (await client.get("/api/v1/invoices", headers=bearer(key["secret"]))).status == 200
    listed = await (await client.get("/api/v1/api-keys", headers=SHOP)).json()
    assert key["id"] in [k["id"] for k in listed["data"]]
    assert all("secret" not in k for k in listed["data"])
    revoked = await client.delete(f"/api/v1/api-keys/{key['id']}", headers=SHOP)
    assert (await revoked.json())["revoked_at"] is not None
    refused = await client.get("/api/v1/invoices", headers=bearer(key["secret"]))
    assert refused.status == 401
    assert (await error_of(refused))["code"] == "invalid_api_key"
    # Another merchant's key is "not found", like an unknown one.
    other = await client.delete(f"/api/v1/api-keys/{key['id']}", headers=OTHER)
    assert other.status == 404


async def test_a_rolled_key_keeps_its_old_secret_for_the_grace_period(client: TestClient) -> None:
    key = await new_key(client, ["invoices:read"])
    rolled = await client.post(
        f"/api/v1/api-keys/{key['id']}/roll", json={"grace_period_seconds": 3600}, headers=SHOP
    )
    new = await rolled.json()
    assert new["secret"] != key["secret"] and new["id"] == key["id"]
    for secret in (key["secret"], new["secret"]):
        assert (await client.get("/api/v1/invoices", headers=bearer(secret))).status == 200
    # Rolled again without grace: the previous secret stops at once.
    again = await client.post(
        f"/api/v1/api-keys/{key['id']}/roll", json={"grace_period_seconds": 0}, headers=SHOP
    )
    newest = (await again.json())["secret"]
    assert (await client.get("/api/v1/invoices", headers=bearer(new["secret"]))).status == 401
    assert (await client.get("/api/v1/invoices", headers=bearer(key["secret"]))).status == 401
    assert (await client.get("/api/v1/invoices", headers=bearer(newest))).status == 200


async def test_an_expired_key_is_refused_naming_when(
    client: TestClient, world: MemoryWorld
) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    key = await new_key(client, ["invoices:read"], expires_at=soon)
    keys = world.services.ports.api_keys
    record, digest, previous = keys.rows[key["id"]]  # type: ignore[attr-defined]
    past = datetime.now(UTC) - timedelta(seconds=1)
    keys.rows[key["id"]] = (
        record.__class__(**{**record.__dict__, "expires_at": past}),
        digest,
        previous,
    )  # type: ignore[attr-defined]
    world.services.access.forget_everything()
    response = await client.get("/api/v1/invoices", headers=bearer(key["secret"]))
    assert response.status == 401
    assert "expired" in (await error_of(response))["message"]


# --- users, roles, sessions -------------------------------------------------------------------


async def add_user(world: MemoryWorld, email: str, role: str, merchant: str | None) -> None:
    await world.services.users.create_user(
        email=email, password=PASSWORD, role=role, merchant_id=merchant
    )


async def login(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


async def test_a_viewer_reads_but_cannot_create_an_invoice(
    client: TestClient, world: MemoryWorld
) -> None:
    await add_user(world, "viewer@shop.example", "viewer", "mer_shop")
    session = await (await login(client, "viewer@shop.example")).json()
    assert session["token_type"] == "Bearer" and session["expires_in"] == 900
    token = bearer(session["access_token"])
    me = await (await client.get("/api/v1/auth/me", headers=token)).json()
    assert (me["type"], me["role"], me["merchant_id"]) == ("user", "viewer", "mer_shop")
    assert (await client.get("/api/v1/invoices", headers=token)).status == 200
    created = await client.post("/api/v1/invoices", json={"amount": "5"}, headers=token)
    assert created.status == 403
    assert (await error_of(created))["param"] == "invoices:write"


async def test_tampered_expired_and_foreign_tokens_are_refused(
    client: TestClient, world: MemoryWorld
) -> None:
    await add_user(world, "dev@shop.example", "developer", "mer_shop")
    session = await (await login(client, "dev@shop.example")).json()
    header, payload, signature = session["access_token"].split(".")
    forged_payload = jwt.utils.base64url_encode(  # type: ignore[attr-defined]
        jwt.utils.base64url_decode(payload).replace(b'"developer"', b'"owner\\u0000"')  # type: ignore[attr-defined]
    ).decode()
    user_id = session["user"]["id"]
    expired, _ = TokenIssuer(world.settings.jwt_secret.encode()).issue_access(
        user_id, "mer_shop", "developer", now=datetime.now(UTC) - timedelta(hours=1)
    )
    foreign, _ = TokenIssuer(b"s" * 32).issue_access(user_id, "mer_shop", "owner")
    for token, reason in (
        (f"{header}.{forged_payload}.{signature}", "bad signature"),
        (expired, "expired"),
        (foreign, "bad signature"),
        (f"{header}.{payload}.", "bad signature"),
    ):
        response = await client.get("/api/v1/invoices", headers=bearer(token))
        assert response.status == 401, reason
        error = await error_of(response)
        assert error["code"] == "invalid_token" and reason in error["message"]
        assert "invalid_token" in response.headers["WWW-Authenticate"]


async def test_refresh_rotates_and_a_reused_refresh_token_ends_the_session(
    client: TestClient, world: MemoryWorld
) -> None:
    await add_user(world, "owner@shop.example", "owner", "mer_shop")
    first = await (await login(client, "owner@shop.example")).json()
    second = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    rotated = await second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    # The first one again: someone kept a copy. Both holders are signed out.
    reused = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reused.status == 401
    assert (await error_of(reused))["code"] == "invalid_refresh_token"
    stolen = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert stolen.status == 401
    # A new sign-in, then logout: its refresh token is dead too.
    fresh = await (await login(client, "owner@shop.example")).json()
    out = await client.post("/api/v1/auth/logout", json={"refresh_token": fresh["refresh_token"]})
    assert out.status == 204
    after = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]}
    )
    assert after.status == 401


async def test_failed_sign_ins_are_limited_per_account(
    client: TestClient, world: MemoryWorld
) -> None:
    await add_user(world, "target@shop.example", "owner", "mer_shop")
    for _ in range(3):
        wrong = await login(client, "target@shop.example", "not the password at all")
        assert wrong.status == 401
        assert (await error_of(wrong))["code"] == "invalid_credentials"
    locked = await login(client, "target@shop.example")  # even the right password now
    assert locked.status == 429
    assert (await error_of(locked))["code"] == "too_many_attempts"
    assert int(locked.headers["Retry-After"]) > 0
    unknown = await login(client, "nobody@shop.example")
    assert unknown.status == 401  # the same answer as a wrong password


async def test_an_owner_invites_and_the_invitee_signs_in(
    client: TestClient, world: MemoryWorld
) -> None:
    await add_user(world, "boss@shop.example", "owner", "mer_shop")
    owner = bearer((await (await login(client, "boss@shop.example")).json())["access_token"])
    invited = await client.post(
        "/api/v1/users", json={"email": "New.Dev@Shop.example", "role": "developer"}, headers=owner
    )
    assert invited.status == 201
    body = await invited.json()
    assert (body["email"], body["status"]) == ("new.dev@shop.example", "invited")
    weak = await client.post(
        "/api/v1/auth/accept-invitation", json={"invitation": body["invitation"], "password": "x"}
    )
    assert weak.status == 400 and (await error_of(weak))["param"] == "password"
    accepted = await client.post(
        "/api/v1/auth/accept-invitation",
        json={"invitation": body["invitation"], "password": PASSWORD},
    )
    assert accepted.status == 200
    assert (await accepted.json())["user"]["role"] == "developer"
    again = await client.post(
        "/api/v1/auth/accept-invitation",
        json={"invitation": body["invitation"], "password": PASSWORD},
    )
    assert again.status == 401
    # The owner makes them a viewer: their next request has the viewer's scopes.
    developer = bearer((await accepted.json())["access_token"])
    assert (await client.get("/api/v1/webhook-endpoints", headers=developer)).status == 200
    patched = await client.patch(
        f"/api/v1/users/{body['id']}", json={"role": "viewer"}, headers=owner
    )
    assert (await patched.json())["role"] == "viewer"
    denied = await client.post(
        "/api/v1/webhook-endpoints", json={"url": "https://x.example/h"}, headers=developer
    )
    assert denied.status == 403
    # The only owner cannot step down.
    boss_id = (await (await client.get("/api/v1/auth/me", headers=owner)).json())["id"]
    last = await client.patch(f"/api/v1/users/{boss_id}", json={"role": "viewer"}, headers=owner)
    assert last.status == 422 and (await error_of(last))["code"] == "last_owner"
    # A developer cannot manage the team.
    assert (await client.get("/api/v1/users", headers=developer)).status == 403


# --- the admin --------------------------------------------------------------------------------


async def test_the_admin_sets_the_fee_and_suspends(client: TestClient, world: MemoryWorld) -> None:
    await add_user(world, "admin@platform.example", "admin", None)
    admin = bearer((await (await login(client, "admin@platform.example")).json())["access_token"])
    merchants = await (await client.get("/api/v1/admin/merchants", headers=admin)).json()
    assert [m["id"] for m in merchants["data"]] == ["mer_other", "mer_shop"]
    # A merchant's key is not the admin.
    assert (await client.get("/api/v1/admin/merchants", headers=SHOP)).status == 403
    patched = await client.patch(
        "/api/v1/admin/merchants/mer_shop", json={"fee_percentage": "2.75"}, headers=admin
    )
    assert (await patched.json())["fee_percentage"] == "2.75"
    invoice = await (
        await client.post("/api/v1/invoices", json={"amount": "100"}, headers=SHOP)
    ).json()
    assert Decimal(invoice["fee_percentage"]) == Decimal("2.75")
    suspended = await client.post("/api/v1/admin/merchants/mer_shop/suspend", headers=admin)
    assert (await suspended.json())["status"] == "suspended"
    refused = await client.get("/api/v1/invoices", headers=SHOP)
    assert refused.status == 403 and (await error_of(refused))["code"] == "merchant_suspended"
    assert (await client.get("/api/v1/invoices", headers=OTHER)).status == 200
    await client.post("/api/v1/admin/merchants/mer_shop/unsuspend", headers=admin)
    assert (await client.get("/api/v1/invoices", headers=SHOP)).status == 200
    bad = await client.patch(
        "/api/v1/admin/merchants/mer_shop", json={"fee_percentage": "101"}, headers=admin
    )
    assert bad.status == 400


async def test_the_admin_sets_the_underpayment_tolerance_of_the_next_invoices(
    client: TestClient, world: MemoryWorld
) -> None:
    await add_user(world, "admin@platform.example", "admin", None)
    admin = bearer((await (await login(client, "admin@platform.example")).json())["access_token"])
    patched = await client.patch(
        "/api/v1/admin/merchants/mer_shop", json={"underpaid_tolerance": "99.5"}, headers=admin
    )
    assert (await patched.json())["underpaid_tolerance"] == "99.5"
    invoice = await (
        await client.post("/api/v1/invoices", json={"amount": "100"}, headers=SHOP)
    ).json()
    assert invoice["underpaid_tolerance"] == "99.5"
    for bad in ("100.5", "-1", "abc", True):
        refused = await client.patch(
            "/api/v1/admin/merchants/mer_shop", json={"underpaid_tolerance": bad}, headers=admin
        )
        assert refused.status == 400, bad
        assert (await error_of(refused))["param"] == "underpaid_tolerance"
    cleared = await client.patch(
        "/api/v1/admin/merchants/mer_shop", json={"underpaid_tolerance": None}, headers=admin
    )
    assert (await cleared.json())["underpaid_tolerance"] is None


# --- the audit log ----------------------------------------------------------------------------


async def test_the_audit_log_holds_the_changes_in_order(
    client: TestClient, world: MemoryWorld
) -> None:
    key = await new_key(client, ["invoices:read"])
    await client.delete(f"/api/v1/api-keys/{key['id']}", headers=SHOP)
    await client.post("/api/v1/invoices", json={"amount": "1"}, headers=bearer(key["secret"]))
    await login(client, "nobody@shop.example", "wrong password here")
    log = await (await client.get("/api/v1/audit-log", headers=SHOP)).json()
    actions = [(e["action"], e["result"], e["target_id"]) for e in log["data"]]
    assert actions == [
        ("POST /api/v1/api-keys", "201", key["id"]),
        ("DELETE /api/v1/api-keys/{key_id}", "200", key["id"]),
    ]
    first = log["data"][0]
    assert first["actor"]["type"] == "api_key" and first["details"]["scopes"] == ["invoices:read"]
    assert first["request_id"].startswith("req_") and first["client_address"] == "127.0.0.1"
    # The failed sign-in of nobody in particular is the platform's, not this merchant's.
    everything = world.audit_log.entries_written
    assert everything[-1].action == "POST /api/v1/auth/login"
    assert (everything[-1].result, everything[-1].actor_kind) == ("401", "anonymous")
    assert (await (await client.get("/api/v1/audit-log", headers=OTHER)).json())["data"] == []


# --- rate limits per caller -------------------------------------------------------------------


async def test_the_fourth_invoice_within_a_minute_is_refused_with_retry_after(
    client: TestClient,
) -> None:
    # RATE_LIMIT_INVOICE_CREATE=3/minute here (the fakes hold four deposit addresses).
    for number in range(3):
        response = await client.post("/api/v1/invoices", json={"amount": "1"}, headers=SHOP)
        assert response.status == 201
        assert response.headers["RateLimit-Limit"] == "3"
        assert response.headers["RateLimit-Remaining"] == str(2 - number)
    limited = await client.post("/api/v1/invoices", json={"amount": "1"}, headers=SHOP)
    assert limited.status == 429
    error = await error_of(limited)
    assert (error["code"], error["param"]) == ("rate_limit_exceeded", "invoice_create")
    assert 1 <= int(limited.headers["Retry-After"]) <= 20
    assert limited.headers["RateLimit-Remaining"] == "0"
    # Reads have their own budget; another merchant its own.
    assert (await client.get("/api/v1/invoices", headers=SHOP)).status == 200
    assert (
        await client.post("/api/v1/invoices", json={"amount": "1"}, headers=OTHER)
    ).status == 201


async def test_every_answer_names_its_request(client: TestClient) -> None:
    mine = await client.get("/api/v1/invoices", headers={**SHOP, "X-Request-Id": "trace-123"})
    assert mine.headers["X-Request-Id"] == "trace-123"
    odd = await client.get("/api/v1/invoices", headers={**SHOP, "X-Request-Id": "a b\tc"})
    assert odd.headers["X-Request-Id"].startswith("req_")
    refused = await client.get("/api/v1/invoices")
    assert refused.status == 401 and refused.headers["X-Request-Id"].startswith("req_")


# --- no escalation, no bypass ---------------------------------------------------------------


async def test_a_users_write_key_cannot_make_an_owner(client: TestClient) -> None:
    team = await new_key(client, ["users:write"])
    invited = await client.post(
        "/api/v1/users",
        json={"email": "evil@x.example", "role": "owner"},
        headers=bearer(team["secret"]),
    )
    assert invited.status == 403 and (await error_of(invited))["code"] == "insufficient_scope"


async def test_a_narrow_key_cannot_revoke_a_stronger_one(client: TestClient) -> None:
    narrow = await new_key(client, ["keys:write"])
    strong = await new_key(client, ["invoices:read", "keys:write"])
    refused = await client.delete(
        f"/api/v1/api-keys/{strong['id']}", headers=bearer(narrow["secret"])
    )
    assert refused.status == 403
    assert (await client.get("/api/v1/invoices", headers=bearer(strong["secret"]))).status == 200


async def test_parallel_wrong_passwords_cannot_outrun_the_limit(
    client: TestClient, world: MemoryWorld
) -> None:
    await add_user(world, "parallel@shop.example", "owner", "mer_shop")
    answers = await asyncio.gather(
        *(login(client, "parallel@shop.example", f"wrong password {n:04}") for n in range(12))
    )
    statuses = sorted(answer.status for answer in answers)
    assert statuses.count(401) == 3 and statuses.count(429) == 9  # per account: 3/hour here


async def test_an_invited_owner_who_never_signed_in_does_not_count_as_an_owner(
    client: TestClient, world: MemoryWorld
) -> None:
    await add_user(world, "first@shop.example", "owner", "mer_shop")
    owner = bearer((await (await login(client, "first@shop.example")).json())["access_token"])
    await client.post(
        "/api/v1/users", json={"email": "later@shop.example", "role": "owner"}, headers=owner
    )
    me = (await (await client.get("/api/v1/auth/me", headers=owner)).json())["id"]
    step_down = await client.patch(f"/api/v1/users/{me}", json={"role": "viewer"}, headers=owner)
    assert step_down.status == 422 and (await error_of(step_down))["code"] == "last_owner"


async def test_junk_session_tokens_write_no_audit_entries(
    client: TestClient, world: MemoryWorld
) -> None:
    before = len(world.audit_log.entries_written)
    for _ in range(5):
        await client.post("/api/v1/auth/refresh", json={"refresh_token": "junk"})
        await client.post("/api/v1/auth/logout", json={"refresh_token": "rt_junk"})
    assert len(world.audit_log.entries_written) == before


async def test_an_absurd_time_is_a_400_not_a_stored_row(client: TestClient) -> None:
    for moment in ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"):
        response = await client.post(
            "/api/v1/api-keys",
            json={"name": "k", "scopes": ["invoices:read"], "expires_at": moment},
            headers=SHOP,
        )
        assert response.status == 400
        assert (await error_of(response))["param"] == "expires_at"


async def test_a_key_read_across_its_revocation_is_not_cached(world: MemoryWorld) -> None:
    """A read that began before a revocation and ended after it was heard: used once, never
    cached (else the revoked key would work on this worker for the cache's 30 s)."""
    access, keys = world.services.access, world.services.ports.api_keys
    key_id = SHOP_API_KEY.split("_")[1]
    original = keys.credentials
    entered, gate = asyncio.Event(), asyncio.Event()

    async def slow(key: str) -> Any:
        found = await original(key)
        entered.set()
        await gate.wait()
        return found

    keys.credentials = slow  # type: ignore[method-assign]
    racing = asyncio.create_task(access.authenticate(SHOP_API_KEY))
    await entered.wait()
    await keys.revoke("mer_shop", key_id)
    access.forget(f"key:{key_id}")  # the announcement arrives while the read is in flight
    gate.set()
    await racing
    keys.credentials = original  # type: ignore[method-assign]
    with pytest.raises(InvalidApiKey):
        await access.authenticate(SHOP_API_KEY)
