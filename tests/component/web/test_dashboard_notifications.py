"""The dashboard's Notifications page over the real views and services (in-memory ports): the
user's notices per channel as checkboxes, saving them (and a refusal that keeps what was typed),
linking and unlinking a Telegram chat, and the last notices with their outcome."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from app.domain.notifications import Channel, Notice, NoticeFacts, NoticeMessage
from app.settings import Settings
from tests.component.web.test_dashboard import PASSWORD, csrf_of
from tests.support.fakes import TEST_PEPPER, MemoryNotices, MemoryWorld, memory_world

pytestmark = pytest.mark.component

PAGE = "/dashboard/notifications"
API = "/api/v1/notification-preferences"
_CHECKBOX = re.compile(r'<input type="checkbox" id="([a-z]+)-([a-z_]+)"[^>]*>')
_COMMAND = re.compile(
    r'<output id="telegram-command" class="mono">/start ([A-Za-z0-9_-]+)</output>'
)


@pytest.fixture
def world(request: pytest.FixtureRequest) -> MemoryWorld:
    """The memory world, with the settings a test names by ``indirect`` parametrization."""
    return memory_world(getattr(request, "param", None))


async def sign_in(client: TestClient, world: MemoryWorld, role: str = "owner") -> str:
    """A user of the shop signed in to the dashboard; their user id."""
    email = f"{role}@shop.example"
    user = await world.services.users.create_user(
        email=email, password=PASSWORD, role=role, merchant_id="mer_shop"
    )
    answer = await client.post(
        "/dashboard/login",
        data={"csrf": await csrf_of(client), "email": email, "password": PASSWORD},
        allow_redirects=False,
    )
    assert answer.status == 303, await answer.text()
    return user.user_id


async def preferences_by_api(client: TestClient, role: str = "owner") -> dict[str, Any]:
    """What the API says the user chose (signed in to the API on its own)."""
    login = await client.post(
        "/api/v1/auth/login", json={"email": f"{role}@shop.example", "password": PASSWORD}
    )
    token = (await login.json())["access_token"]
    answer = await client.get(API, headers={"Authorization": f"Bearer {token}"})
    assert answer.status == 200, await answer.text()
    return dict(await answer.json())


async def page_of(client: TestClient, path: str = PAGE) -> str:
    answer = await client.get(path)
    assert answer.status == 200, await answer.text()
    return await answer.text()


def ticked(page: str) -> dict[str, set[str]]:
    """The notices ticked per channel on the page."""
    found: dict[str, set[str]] = {str(channel): set() for channel in Channel}
    for match in _CHECKBOX.finditer(page):
        if " checked" in match.group(0):
            found[match.group(1)].add(match.group(2))
    return found


def sms_number_field(page: str) -> str:
    match = re.search(r'<input id="sms-number"[^>]* value="([^"]*)"', page)
    assert match, "no SMS number field on the page"
    return html.unescape(match.group(1))


async def save(client: TestClient, number: str = "", **channels: list[str]) -> Any:
    """The preferences form sent as a browser sends it: one field per ticked box."""
    form = FormData()
    form.add_field("csrf", await csrf_of(client, PAGE))
    for channel, notices in channels.items():
        for notice in notices:
            form.add_field(channel, notice)
    form.add_field("sms_number", number)
    return await client.post(PAGE, data=form, allow_redirects=False)


async def post(client: TestClient, path: str) -> Any:
    token = await csrf_of(client, PAGE)
    return await client.post(path, data={"csrf": token}, allow_redirects=False)


def notices_of(world: MemoryWorld) -> MemoryNotices:
    store = world.ports.notices
    assert isinstance(store, MemoryNotices)
    return store


async def test_the_page_shows_the_defaults_ticked_and_is_in_the_navigation(
    client: TestClient, world: MemoryWorld
) -> None:
    await sign_in(client, world, "viewer")  # every role has notices of its own
    page = await page_of(client)

    assert '<a href="/dashboard/notifications" aria-current="page">Notifications</a>' in page
    assert ticked(page) == {
        "email": {"payment_exception", "refund_finished", "payout_finished",
                  "webhook_endpoint_disabled"},
        "telegram": set(Notice) - {"daily_summary"},
        "sms": set(),
    }  # fmt: skip
    for label in ("Invoice paid", "Underpaid, overpaid or paid late", "Daily summary",
                  "Webhook endpoint disabled (email backup of webhooks)"):  # fmt: skip
        assert f'<th scope="row">{label}</th>' in page
    assert sms_number_field(page) == ""
    assert 'id="link-telegram"' in page and "No chat linked" in page
    assert "No notice yet." in page


async def test_the_platform_admin_has_no_notifications_link(
    client: TestClient, world: MemoryWorld
) -> None:
    await world.services.users.create_user(
        email="admin@platform.example", password=PASSWORD, role="admin", merchant_id=None
    )
    await client.post(
        "/dashboard/login",
        data={"csrf": await csrf_of(client), "email": "admin@platform.example",
              "password": PASSWORD},
    )  # fmt: skip
    page = await page_of(client, "/dashboard/admin/merchants")
    assert "Merchants</a>" in page and "/dashboard/notifications" not in page


async def test_saving_replaces_every_channel_and_the_number(
    client: TestClient, world: MemoryWorld
) -> None:
    await sign_in(client, world)
    saved = await save(
        client,
        " +4915112345678 ",
        email=["invoice_paid", "daily_summary"],
        sms=["payout_finished"],
    )  # telegram: nothing ticked

    assert saved.status == 303
    assert saved.headers["Location"] == "/dashboard/notifications?notice=notifications_saved"
    chosen = await preferences_by_api(client)
    assert chosen["email"] == ["daily_summary", "invoice_paid"]
    assert chosen["telegram"] == []
    assert (chosen["sms"], chosen["sms_number"]) == (["payout_finished"], "+4915112345678")
    page = await page_of(client, saved.headers["Location"])
    assert "Notification settings saved." in page
    assert ticked(page) == {
        "email": {"invoice_paid", "daily_summary"},
        "telegram": set(),
        "sms": {"payout_finished"},
    }
    assert sms_number_field(page) == "+4915112345678"

    # An empty field removes the number (with the SMS notices, as the API asks).
    cleared = await save(client, "", email=["invoice_paid"])
    assert cleared.status == 303
    chosen = await preferences_by_api(client)
    assert (chosen["sms"], chosen["sms_number"]) == ([], None)


@pytest.mark.parametrize(
    ("number", "sms", "words"),
    [
        ("015112345678", ["invoice_paid"], "E.164"),
        ("<b>+49</b>", [], "international number"),
        ("", ["invoice_paid"], "give an sms_number"),
    ],
)
async def test_a_refused_change_says_why_keeps_what_was_typed_and_changes_nothing(
    client: TestClient, world: MemoryWorld, number: str, sms: list[str], words: str
) -> None:
    await sign_in(client, world)
    before = await preferences_by_api(client)
    refused = await save(client, number, email=["invoice_paid"], sms=sms)

    assert refused.status == 400
    page = await refused.text()
    error = re.search(r'<p class="error" role="alert">([^<]*)</p>', page)
    assert error and words in html.unescape(error.group(1))
    assert sms_number_field(page) == number  # escaped in the attribute, shown as typed
    assert "<b>" not in page
    assert ticked(page) == {"email": {"invoice_paid"}, "telegram": set(), "sms": set(sms)}
    assert await preferences_by_api(client) == before


async def test_a_form_without_the_csrf_token_changes_nothing(
    client: TestClient, world: MemoryWorld
) -> None:
    await sign_in(client, world)
    before = await preferences_by_api(client)
    forged = await client.post(PAGE, data={"email": "daily_summary", "sms_number": ""})
    assert forged.status == 403
    assert await preferences_by_api(client) == before
    linked = await client.post(f"{PAGE}/telegram/link", data={})
    assert linked.status == 403 and notices_of(world).tokens == {}


async def test_a_telegram_chat_is_linked_with_the_start_command_and_unlinked(
    client: TestClient, world: MemoryWorld
) -> None:
    await sign_in(client, world)
    offered = await post(client, f"{PAGE}/telegram/link")
    assert offered.status == 200
    page = await offered.text()
    command = _COMMAND.search(page)
    assert command, "no /start command on the page"
    assert "Send this command to the platform's Telegram bot" in page  # no bot name set
    assert "Open in Telegram" not in page
    assert "It works once, for 30 minutes" in page
    assert 'id="link-telegram">Get a new link' in page
    assert '<a href="/dashboard/notifications" aria-current="page">' in page

    # The user sends the command to the bot.
    assert await notices_of(world).redeem_link_token(command.group(1), 4242, "shopkeeper")
    page = await page_of(client)
    assert "Linked to @shopkeeper (chat id" in page and ">4242</span>" in page
    assert 'id="link-telegram"' not in page and "/start" not in page

    unlinked = await post(client, f"{PAGE}/telegram/unlink")
    assert unlinked.status == 303
    assert unlinked.headers["Location"] == "/dashboard/notifications?notice=telegram_unlinked"
    page = await page_of(client, unlinked.headers["Location"])
    assert "Telegram is unlinked" in page and "No chat linked" in page
    assert notices_of(world).chats == {}
    again = await post(client, f"{PAGE}/telegram/unlink")  # a second click
    assert again.status == 303


@pytest.mark.parametrize(
    "world",
    [Settings(api_key_pepper=TEST_PEPPER, telegram_bot_username="checkout_bot")],
    indirect=True,
)
async def test_with_the_bots_name_the_link_opens_telegram(
    client: TestClient, world: MemoryWorld
) -> None:
    await sign_in(client, world)
    page = await (await post(client, f"{PAGE}/telegram/link")).text()
    command = _COMMAND.search(page)
    assert command
    link = re.search(r'<a class="button" id="telegram-deep-link" href="([^"]+)"', page)
    assert link and html.unescape(link.group(1)) == (
        f"https://t.me/checkout_bot?start={command.group(1)}"
    )
    assert ">Open in Telegram</a>" in page


async def test_the_last_notices_are_listed_with_their_outcome(
    client: TestClient, world: MemoryWorld
) -> None:
    user_id = await sign_in(client, world)
    store = notices_of(world)
    about = NoticeFacts(
        notice=Notice.PAYOUT_FINISHED,
        subject_id="po_123",
        source_id="evt_1",
        merchant_id="mer_shop",
        occurred_at=datetime.now(UTC),
        facts={"payout_id": "po_123", "outcome": "confirmed"},
    )
    email = NoticeMessage.to(user_id, Channel.EMAIL, about)
    sms = NoticeMessage.to(user_id, Channel.SMS, about)
    await store.enqueue([email, sms])
    await store.finish(email.notice_id, "sent")
    await store.finish(sms.notice_id, "rejected", error="<21211> invalid number")

    page = await page_of(client)
    table = re.search(r'<table id="recent-notices">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert table
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
    assert len(rows) == 2
    newest = re.sub(r"\s+", " ", rows[0])
    assert "Payout finished" in newest and "po_123" in newest and "<td>SMS</td>" in newest
    assert '<span class="badge rejected">rejected</span>' in newest
    assert "&lt;21211&gt; invalid number" in newest
    assert '<span class="badge sent">sent</span>' in rows[1] and "<td>Email</td>" in rows[1]
