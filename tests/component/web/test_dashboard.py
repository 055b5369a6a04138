"""The merchant dashboard over the real views and services (in-memory ports): sign-in, CSRF,
pages built from the API as the signed-in user, actions, exports. The browser tier
(tests/browser) drives the same pages in Chromium; these tests pin the server's side."""

from __future__ import annotations

import csv
import io
import re
from http.cookies import SimpleCookie
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from app.domain.policies import settlement_command_for
from tests.component.web.conftest import SHOP
from tests.component.web.test_exports_api import SETTLEMENTS_HEADER, exports, settlement
from tests.component.web.test_merchant_api import pay_in_full
from tests.support.fakes import MemoryWorld

pytestmark = pytest.mark.component

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def add_user(world: MemoryWorld, email: str, role: str, merchant: str | None) -> None:
    await world.services.users.create_user(
        email=email, password=PASSWORD, role=role, merchant_id=merchant
    )


async def csrf_of(client: TestClient, path: str = "/dashboard/login") -> str:
    page = await client.get(path)
    match = _CSRF.search(await page.text())
    assert match, f"no CSRF field on {path}"
    return match.group(1)


async def sign_in(client: TestClient, world: MemoryWorld, role: str = "owner") -> None:
    email = f"{role}@shop.example"
    await add_user(world, email, role, "mer_shop")
    token = await csrf_of(client)
    answer = await client.post(
        "/dashboard/login",
        data={"csrf": token, "email": email, "password": PASSWORD, "next": "/dashboard"},
        allow_redirects=False,
    )
    assert answer.status == 303, await answer.text()
    assert answer.headers["Location"] == "/dashboard"
    cookies = answer.headers.getall("Set-Cookie")
    access = next(cookie for cookie in cookies if cookie.startswith("cc_access="))
    assert "HttpOnly" in access and "SameSite=Strict" in access and "Path=/dashboard" in access


async def post_form(client: TestClient, path: str, **fields: Any) -> Any:
    token = await csrf_of(client, "/dashboard/invoices")
    return await client.post(path, data={"csrf": token, **fields}, allow_redirects=False)


async def test_pages_need_a_session_and_sign_in_goes_back_where_asked(
    client: TestClient, world: MemoryWorld
) -> None:
    answer = await client.get("/dashboard/invoices?status=paid", allow_redirects=False)
    assert answer.status == 303
    assert (
        answer.headers["Location"]
        == "/dashboard/login?next=%2Fdashboard%2Finvoices%3Fstatus%3Dpaid"
    )

    await add_user(world, "owner@shop.example", "owner", "mer_shop")
    token = await csrf_of(client)
    wrong = await client.post(
        "/dashboard/login",
        data={"csrf": token, "email": "owner@shop.example", "password": "not it at all"},
    )
    assert wrong.status == 401
    assert "The email or the password is wrong." in await wrong.text()
    # An open redirect is not offered: "next" stays inside the dashboard.
    answer = await client.post(
        "/dashboard/login",
        data={
            "csrf": token,
            "email": "owner@shop.example",
            "password": PASSWORD,
            "next": "//evil.example/phish",
        },
        allow_redirects=False,
    )
    assert answer.headers["Location"] == "/dashboard"


async def test_a_form_without_the_csrf_token_or_from_another_origin_is_refused(
    client: TestClient, world: MemoryWorld
) -> None:
    await sign_in(client, world)
    forged = await client.post("/dashboard/invoices", data={"amount": "5"})
    assert forged.status == 403
    assert "Form expired" in await forged.text()
    token = await csrf_of(client, "/dashboard/invoices")
    elsewhere = await client.post(
        "/dashboard/invoices",
        data={"csrf": token, "amount": "5"},
        headers={"Origin": "https://evil.example"},
    )
    assert elsewhere.status == 403
    listed = await (await client.get("/api/v1/invoices", headers=SHOP)).json()
    assert listed["data"] == []


async def test_the_overview_shows_the_merchants_figures_and_a_chart(
    client: TestClient, world: MemoryWorld
) -> None:
    await sign_in(client, world)
    page = await client.get("/dashboard")
    assert page.status == 200
    text = await page.text()
    assert "<svg" in text and 'role="img"' in text
    assert "Gross volume" in text and "Available balance" in text
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert page.headers["Cache-Control"] == "no-store"


async def test_an_invoice_created_and_paid_shows_its_payment_and_fee_line(
    client: TestClient, world: MemoryWorld
) -> None:
    await sign_in(client, world)
    created = await post_form(
        client, "/dashboard/invoices", amount="12.50", description="Blue mug", order_id="A-1"
    )
    assert created.status == 303
    location = created.headers["Location"]
    assert location.startswith("/dashboard/invoices/") and location.endswith(
        "?notice=invoice_created"
    )
    invoice_id = URL(location).path.rsplit("/", 1)[1]
    await pay_in_full(world, invoice_id, 12_500_000)
    command = settlement_command_for(world.publisher.events[-1])
    assert command is not None
    await world.services.settling.settle(command)

    page = await client.get(location)
    text = await page.text()
    assert page.status == 200
    assert "Invoice created." in text and "Blue mug" in text
    # The fee is rounded to the cent (DESIGN.md, Fees): 1 % of 12.50 is 0.125 → 0.13.
    assert 'Platform fee (1 %)</th><td class="num">− 0.13 USDT' in text
    assert 'Net to your balance</th><td class="num">12.37 USDT' in text

    refused = await post_form(client, "/dashboard/invoices", amount="-3")
    assert refused.status == 400
    assert 'role="alert"' in await refused.text()


async def test_the_settlements_csv_downloads_through_the_dashboard_with_its_fee_line(
    client: TestClient, world: MemoryWorld
) -> None:
    await sign_in(client, world)
    exports(world).settlement_rows = [settlement(n, f"order-{n}") for n in range(1, 4)]
    answer = await client.get("/dashboard/exports/settlements.csv?from=2026-11-01&to=2026-11-30")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/csv")
    assert answer.headers["Content-Disposition"] == (
        'attachment; filename="settlements-2026-11-01-2026-11-30.csv"'
    )
    rows = list(csv.reader(io.StringIO((await answer.read()).decode(), newline="")))
    assert tuple(rows[0]) == SETTLEMENTS_HEADER and len(rows) == 4
    first = dict(zip(rows[0], rows[1], strict=True))
    assert (first["gross_amount"], first["platform_fee_amount"], first["net_amount"]) == (
        "9.99",
        "0.0999",
        "9.8901",
    )
    # The dashboard asked for the signed-in user's own merchant, for the days chosen.
    assert exports(world).asked[-1][:2] == ("settlements", "mer_shop")

    bad = await client.get("/dashboard/exports/settlements.csv?from=yesterday")
    assert bad.status == 400
    assert "from" in await bad.text()


async def test_an_owner_creates_and_revokes_an_api_key_and_a_viewer_sees_no_key_management(
    client: TestClient, world: MemoryWorld
) -> None:
    await sign_in(client, world)
    created = await post_form(
        client, "/dashboard/keys", name="shop backend", scopes="invoices:read"
    )
    assert created.status == 200
    text = await created.text()
    secret = re.search(r'<output id="secret-value" class="mono">(ck_[^<]+)</output>', text)
    assert secret, text
    works = await client.get(
        "/api/v1/invoices", headers={"Authorization": f"Bearer {secret.group(1)}"}
    )
    assert works.status == 200
    key_id = re.search(r'data-key-id="([^"]+)"><td>shop backend<', text)
    assert key_id
    revoked = await post_form(client, f"/dashboard/keys/{key_id.group(1)}/revoke")
    assert revoked.headers["Location"] == "/dashboard/keys?notice=key_revoked"
    world.services.access.forget_everything()
    refused = await client.get(
        "/api/v1/invoices", headers={"Authorization": f"Bearer {secret.group(1)}"}
    )
    assert refused.status == 401

    # Done in the browser, written in the audit log as any client's change: the user, the
    # browser's address (not a worker's), the outcome.
    written = [
        e for e in world.audit_log.entries_written if e.action.startswith("POST /api/v1/api")
    ]
    assert [(e.action, e.result, e.actor_kind) for e in written] == [
        ("POST /api/v1/api-keys", "201", "user")
    ]
    assert written[0].client_address == "127.0.0.1" and written[0].merchant_id == "mer_shop"
    revoked_entry = world.audit_log.entries_written[-1]
    assert (revoked_entry.action, revoked_entry.result) == (
        "DELETE /api/v1/api-keys/{key_id}",
        "200",
    )

    client.session.cookie_jar.clear()
    await sign_in(client, world, role="viewer")
    keys = await (await client.get("/dashboard/keys")).text()
    assert "Your role cannot manage API keys" in keys and "Create key" not in keys
    forced = await post_form(client, "/dashboard/keys", name="sneaky", scopes="invoices:read")
    assert forced.status == 403


async def test_an_expired_access_token_is_renewed_with_the_refresh_cookie(
    client: TestClient, world: MemoryWorld
) -> None:
    await sign_in(client, world)
    held = {cookie.key: cookie.value for cookie in client.session.cookie_jar}
    client.session.cookie_jar.clear()
    jar = SimpleCookie()
    for name, value in {**held, "cc_access": "expired.or.tampered"}.items():
        jar[name] = value
        jar[name]["path"] = "/dashboard"
    client.session.cookie_jar.update_cookies(jar, URL(str(client.make_url("/dashboard"))))
    page = await client.get("/dashboard/invoices")
    assert page.status == 200
    renewed = [c for c in page.headers.getall("Set-Cookie", []) if c.startswith("cc_access=")]
    assert renewed and "expired.or.tampered" not in renewed[0]


async def test_signing_out_ends_the_session(client: TestClient, world: MemoryWorld) -> None:
    await sign_in(client, world)
    token = await csrf_of(client, "/dashboard/invoices")
    out = await client.post("/dashboard/logout", data={"csrf": token}, allow_redirects=False)
    assert out.headers["Location"] == "/dashboard/login?notice=signed_out"
    after = await client.get("/dashboard/invoices", allow_redirects=False)
    assert after.status == 303


async def test_the_live_socket_needs_a_session_and_answers_ready(
    client: TestClient, world: MemoryWorld
) -> None:
    refused = await client.get("/dashboard/live", allow_redirects=False)
    assert refused.status == 303  # no session: to the sign-in page, no socket
    await sign_in(client, world)
    socket = await client.ws_connect("/dashboard/live")
    # Its API calls carry a comma in the query ("status=pending,confirming"): signed as sent.
    first = await socket.receive_json(timeout=5)
    assert first["type"] == "ready"
    await socket.close()


async def test_a_webhook_endpoint_is_added_tested_and_rotated_from_the_dashboard(
    client: TestClient, world: MemoryWorld
) -> None:
    await sign_in(client, world)
    page = await (await client.get("/dashboard/webhooks")).text()
    # The choices are the API's event types and families, not names it would refuse.
    assert 'value="InvoicePaid"' in page and 'value="Settlement*"' in page
    token = await csrf_of(client, "/dashboard/webhooks")
    added = await client.post(
        "/dashboard/webhooks",
        data=[
            ("csrf", token),
            ("url", "https://hooks.example/in"),
            ("event_types", "InvoicePaid"),
            ("event_types", "Settlement*"),
        ],
    )
    assert added.status == 200
    text = await added.text()
    assert re.search(r'<output id="secret-value" class="mono">whsec_', text), text
    listed = await (await client.get("/api/v1/webhook-endpoints", headers=SHOP)).json()
    (endpoint,) = listed["data"]
    assert endpoint["event_types"] == ["InvoicePaid", "Settlement*"]

    tested = await post_form(client, f"/dashboard/webhooks/{endpoint['id']}/test")
    assert tested.headers["Location"] == f"/dashboard/webhooks/{endpoint['id']}?notice=test_sent"
    rotated = await post_form(client, f"/dashboard/webhooks/{endpoint['id']}/rotate")
    assert "New signing secret" in await rotated.text()
    refused = await post_form(client, "/dashboard/webhooks", url="ftp://files.example/in")
    assert refused.status == 400
    assert 'role="alert"' in await refused.text()
