"""The merchants' Telegram bot (web/telegram_bot.py) fed Telegram updates, answering through a
Bot whose session records the Bot API calls, over the real services with in-memory ports: an
unlinked chat is told how to link and nothing else; a linked chat acts as its user, with that
user's role, for that user's merchant only."""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.base import BaseSession
from aiogram.enums import ParseMode
from aiogram.methods import SendMessage, SendPhoto, TelegramMethod
from aiogram.types import BufferedInputFile, Chat, Message, Update, User

from app.domain.access import ROLE_SCOPES, Principal, Role
from app.domain.commands import CreateInvoice
from app.domain.merchant import Merchant
from app.services.ports import UserRecord
from app.services.rate_limits import Rate
from app.settings import Settings
from tests.support.fakes import (
    EPOCH,
    MERCHANT,
    OTHER_MERCHANT,
    TEST_PEPPER,
    MemoryWorld,
    memory_world,
)
from web.telegram_bot import HELP, NOT_LINKED, MerchantBot

pytestmark = pytest.mark.component

TOKEN = "123456:TEST-token_of-the-bot"
CHAT = 4242
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class RecordingSession(BaseSession):
    """A Bot API that takes every message and remembers each call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[TelegramMethod[Any]] = []
        self._ids = itertools.count(1000)

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[Any],
        timeout: int | None = None,  # noqa: ASYNC109
    ) -> Any:
        self.calls.append(method)
        assert isinstance(method, SendMessage | SendPhoto), f"unexpected call {method!r}"
        return Message(
            message_id=next(self._ids),
            date=datetime.now(UTC),
            chat=Chat(id=int(method.chat_id), type="private"),
            text=method.text if isinstance(method, SendMessage) else None,
            caption=method.caption if isinstance(method, SendPhoto) else None,
        )

    async def close(self) -> None:
        """Nothing to close."""

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,  # noqa: ASYNC109 - aiogram's signature
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        raise AssertionError("the bot downloads nothing")
        yield b""  # pragma: no cover - makes this an async generator


class Chatting:
    """The bot, the recording Bot API behind it, and a way to write to it from a chat."""

    def __init__(self, world: MemoryWorld) -> None:
        self.world = world
        self.session = RecordingSession()
        self.bot = Bot(
            TOKEN, session=self.session, default=DefaultBotProperties(parse_mode=ParseMode.HTML)
        )
        services = world.services
        self.merchant_bot = MerchantBot(
            links=services.telegram_links,
            access=services.access,
            creation=services.invoice_creation,
            invoices=world.ports.invoice_summaries,
            reports=world.ports.reports,
            money_out=world.ports.money_out,
            settings=world.settings,
            limiter=world.ports.limiter,
        )
        self._update_ids = itertools.count(1)
        self.last_update: Update | None = None

    async def say(self, text: str, *, chat_id: int = CHAT, chat_type: str = "private") -> Any:
        """Write ``text`` in a chat; returns the one call the bot answered with."""
        before = len(self.session.calls)
        update_id = next(self._update_ids)
        update = Update(
            update_id=update_id,
            message=Message(
                message_id=update_id,
                date=datetime.now(UTC),
                chat=Chat(id=chat_id, type=chat_type),
                from_user=User(id=chat_id, is_bot=False, first_name="Kim", username="kim_shop"),
                text=text,
            ),
        )
        self.last_update = update
        await self.merchant_bot.feed(self.bot, update)
        [answer] = self.session.calls[before:]
        assert isinstance(answer, SendMessage | SendPhoto)
        assert int(answer.chat_id) == chat_id
        return answer

    async def text_of(self, text: str, **where: Any) -> str:
        answer = await self.say(text, **where)
        assert isinstance(answer, SendMessage), answer
        return answer.text


@pytest.fixture
def world(request: pytest.FixtureRequest) -> MemoryWorld:
    """The memory world, with the settings a test names by ``indirect`` parametrization."""
    return memory_world(getattr(request, "param", None))


@pytest.fixture
def chat(world: MemoryWorld) -> Chatting:
    return Chatting(world)


async def a_user(
    world: MemoryWorld, user_id: str, role: Role = Role.OWNER, merchant: Merchant = MERCHANT
) -> Principal:
    await world.users.add_user(
        UserRecord(
            user_id=user_id,
            email=f"{user_id}@shop.example",
            merchant_id=merchant.merchant_id,
            role=role,
            created_at=EPOCH,
            password_hash="not checked here",
            email_verified_at=EPOCH,
        )
    )
    return Principal(
        kind="user", actor_id=user_id, merchant=merchant, role=role, scopes=ROLE_SCOPES[role]
    )


async def linked(
    chat: Chatting,
    user_id: str = "usr_owner",
    role: Role = Role.OWNER,
    *,
    chat_id: int = CHAT,
    merchant: Merchant = MERCHANT,
) -> str:
    """A user of ``merchant`` who linked ``chat_id`` with ``/start <token>``; the bot's answer."""
    principal = await a_user(chat.world, user_id, role, merchant)
    offer = await chat.world.services.telegram_links.offer(principal, datetime.now(UTC))
    return await chat.text_of(f"/start {offer.token}", chat_id=chat_id)


def balances(world: MemoryWorld) -> dict[str, dict[str, int]]:
    return world.ports.reports.balances  # type: ignore[attr-defined]


# --- an unlinked chat ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["/balance", "/invoices", "/invoice 9.99 Coffee", "/payouts",
                                  "/start", "/help", "hello?"])  # fmt: skip
async def test_an_unlinked_chat_is_told_how_to_link_and_nothing_else(
    chat: Chatting, world: MemoryWorld, text: str
) -> None:
    await a_user(world, "usr_owner")
    balances(world)[MERCHANT.merchant_id] = {"available": 1, "incoming": 2, "outgoing": 3}
    assert await chat.text_of(text) == NOT_LINKED
    assert world.ports.reports.asked == []  # type: ignore[attr-defined]
    assert world.gateway.asked == []
    assert world.ports.invoice_summaries.asked == []  # type: ignore[attr-defined]


async def test_a_start_token_links_the_chat_then_the_commands_answer(
    chat: Chatting, world: MemoryWorld
) -> None:
    balances(world)[MERCHANT.merchant_id] = {
        "available": 12_500_000,
        "incoming": 990_000,
        "outgoing": 0,
    }
    assert (await linked(chat)).startswith("Linked.")
    assert await chat.text_of("/start") == HELP
    assert await chat.text_of("/help") == HELP

    balance = await chat.text_of("/balance")
    assert "Available: 12.5 USDT" in balance
    assert "Incoming (confirming): 0.99 USDT" in balance
    assert "Outgoing (refunds, payouts on their way): 0 USDT" in balance
    assert world.ports.reports.asked == [("balance", MERCHANT.merchant_id)]  # type: ignore[attr-defined]
    status = await world.services.telegram_links.status(await a_user_principal(world))
    assert status is not None and (status["chat_id"], status["username"]) == (CHAT, "kim_shop")


async def a_user_principal(world: MemoryWorld, user_id: str = "usr_owner") -> Principal:
    user = world.users.by_id[user_id]
    return Principal(
        kind="user", actor_id=user_id, merchant=MERCHANT, role=user.role,
        scopes=ROLE_SCOPES[user.role],
    )  # fmt: skip


async def test_a_used_unknown_or_malformed_token_links_nothing(
    chat: Chatting, world: MemoryWorld
) -> None:
    principal = await a_user(world, "usr_owner")
    offer = await world.services.telegram_links.offer(principal, datetime.now(UTC))
    assert (await chat.text_of(f"/start {offer.token}", chat_id=1)).startswith("Linked.")

    used = await chat.text_of(f"/start {offer.token}", chat_id=2)
    assert "not valid any more" in used
    assert "not valid any more" in await chat.text_of("/start no-such-token", chat_id=2)
    assert "not valid" in await chat.text_of("/start " + "x" * 65, chat_id=2)
    assert await chat.text_of("/balance", chat_id=2) == NOT_LINKED


async def test_a_group_chat_is_never_linked_nor_acts_as_a_user(
    chat: Chatting, world: MemoryWorld
) -> None:
    principal = await a_user(world, "usr_owner")
    offer = await world.services.telegram_links.offer(principal, datetime.now(UTC))
    refused = await chat.text_of(f"/start {offer.token}", chat_id=-100, chat_type="group")
    assert "private chat" in refused
    assert await world.services.telegram_links.chat_user(-100) is None

    # Even a group whose id is linked (a chat that became a group) does not act as the user.
    await chat.text_of(f"/start {offer.token}", chat_id=-100)  # linked while private
    assert await chat.text_of("/balance", chat_id=-100, chat_type="group") == NOT_LINKED


async def test_a_disabled_user_chat_acts_no_more(chat: Chatting, world: MemoryWorld) -> None:
    await linked(chat)
    await a_user(world, "usr_other_owner")  # so the merchant keeps an owner
    assert await world.users.disable(MERCHANT.merchant_id, "usr_owner") is not None
    world.services.access.forget("user:usr_owner")
    assert await chat.text_of("/balance") == NOT_LINKED


# --- a new invoice -------------------------------------------------------------------------------


async def test_a_new_invoice_is_answered_with_its_payment_link_and_qr_code(
    chat: Chatting, world: MemoryWorld
) -> None:
    await linked(chat)
    answer = await chat.say("/invoice 9.99 Coffee and cake")

    assert isinstance(answer, SendPhoto)
    [command] = world.gateway.asked
    assert isinstance(command, CreateInvoice)
    assert (command.merchant_id, command.amount) == (MERCHANT.merchant_id, 9_990_000)
    assert command.description == "Coffee and cake"
    assert "InvoiceCreated" in world.publisher.event_types()
    link = f"{world.settings.public_url.rstrip('/')}/pay/{command.invoice_id}"
    caption = answer.caption or ""
    assert f'<a href="{link}">{link}</a>' in caption
    assert "9.99 USDT" in caption and command.invoice_id in caption
    assert isinstance(answer.photo, BufferedInputFile)
    assert answer.photo.data.startswith(PNG_SIGNATURE)
    assert answer.photo.filename == f"{command.invoice_id}.png"


async def test_an_invoice_without_a_description_has_none(
    chat: Chatting, world: MemoryWorld
) -> None:
    await linked(chat)
    assert isinstance(await chat.say("/invoice 5"), SendPhoto)
    [command] = world.gateway.asked
    assert isinstance(command, CreateInvoice)
    assert (command.amount, command.description) == (5_000_000, None)


async def test_a_redelivered_invoice_command_creates_one_invoice(
    chat: Chatting, world: MemoryWorld
) -> None:
    await linked(chat)
    await chat.say("/invoice 9.99 Coffee")
    assert chat.last_update is not None
    await chat.merchant_bot.feed(chat.bot, chat.last_update)  # the same update again
    assert len({command.invoice_id for command in world.gateway.asked}) == 1


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("/invoice", "Give an amount"),
        ("/invoice   ", "Give an amount"),
        ("/invoice " + "9" * 700, "Give an amount"),
        ("/invoice abc", "No invoice: amount must be a decimal number of USDT"),
        ("/invoice 9,99", "No invoice: amount must be a decimal number of USDT"),
        ("/invoice 0", "No invoice: amount must be greater than zero"),
        ("/invoice -5", "No invoice: amount must not be negative"),
        ("/invoice 1.1234567", "No invoice: amount has more than 6 decimals"),
        ("/invoice 99999999999999999 Yacht", "No invoice:"),
    ],
)
async def test_a_new_invoice_without_a_good_amount_is_refused_clearly(
    chat: Chatting, world: MemoryWorld, text: str, words: str
) -> None:
    await linked(chat)
    answer = await chat.text_of(text)
    assert answer.startswith(words), answer
    assert world.gateway.asked == []
    assert "InvoiceCreated" not in world.publisher.event_types()


async def test_a_viewer_may_not_create_an_invoice_but_may_read(
    chat: Chatting, world: MemoryWorld
) -> None:
    await linked(chat, "usr_viewer", Role.VIEWER)
    refused = await chat.text_of("/invoice 9.99 Coffee")
    assert refused.startswith("Not allowed: ") and "invoices:write" in refused
    assert world.gateway.asked == []
    assert "Available: 0 USDT" in await chat.text_of("/balance")


@pytest.mark.parametrize(
    "world",
    [Settings(api_key_pepper=TEST_PEPPER, rate_limit_invoice_create=Rate(1, 3600.0))],
    indirect=True,
)
async def test_a_chat_spends_its_users_rate_budget(chat: Chatting, world: MemoryWorld) -> None:
    await linked(chat)
    assert isinstance(await chat.say("/invoice 1"), SendPhoto)
    refused = await chat.text_of("/invoice 2")
    assert refused.startswith("Too many requests; try again in ")
    assert len(world.gateway.asked) == 1
    assert "Available" in await chat.text_of("/balance")  # reads have their own budget


async def test_a_role_changed_since_linking_counts_now(chat: Chatting, world: MemoryWorld) -> None:
    await linked(chat, "usr_dev", Role.DEVELOPER)
    await world.users.set_role(MERCHANT.merchant_id, "usr_dev", Role.VIEWER)
    world.services.access.forget("user:usr_dev")
    assert (await chat.text_of("/invoice 1")).startswith("Not allowed: ")


# --- lists ---------------------------------------------------------------------------------------


def invoice_row(merchant_id: str, invoice_id: str, amount: int, status: str,
                exception: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "merchant_id": merchant_id,
        "invoice_id": invoice_id,
        "amount": amount,
        "status": status,
        "payment_exception": exception,
    }


async def test_the_invoices_are_listed_for_the_chats_merchant_only(
    chat: Chatting, world: MemoryWorld
) -> None:
    world.ports.invoice_summaries.rows = [  # type: ignore[attr-defined]
        invoice_row(MERCHANT.merchant_id, "inv_shop_1", 9_990_000, "paid"),
        invoice_row(MERCHANT.merchant_id, "inv_shop_2", 5_000_000, "expired", "underpaid"),
        invoice_row(OTHER_MERCHANT.merchant_id, "inv_other_1", 1_000_000, "pending"),
    ]
    await linked(chat)
    await linked(chat, "usr_elsewhere", chat_id=5353, merchant=OTHER_MERCHANT)

    shop = await chat.text_of("/invoices")
    assert "<code>inv_shop_1</code> 9.99 USDT — paid" in shop
    assert "<code>inv_shop_2</code> 5 USDT — expired (underpaid)" in shop
    assert "inv_other_1" not in shop

    other = await chat.text_of("/invoices", chat_id=5353)
    assert "<code>inv_other_1</code> 1 USDT — pending" in other
    assert "inv_shop" not in other
    asked = world.ports.invoice_summaries.asked  # type: ignore[attr-defined]
    assert [(merchant_id, query.limit) for merchant_id, query in asked] == [
        (MERCHANT.merchant_id, 10),
        (OTHER_MERCHANT.merchant_id, 10),
    ]


async def test_no_invoices_and_no_payouts_yet(chat: Chatting, world: MemoryWorld) -> None:
    await linked(chat)
    assert (await chat.text_of("/invoices")).startswith("No invoices yet.")
    assert await chat.text_of("/payouts") == "No payouts yet."


async def test_another_merchants_chat_sees_its_own_balance(
    chat: Chatting, world: MemoryWorld
) -> None:
    balances(world)[MERCHANT.merchant_id] = {"available": 7_000_000, "incoming": 0, "outgoing": 0}
    await linked(chat)
    await linked(chat, "usr_elsewhere", chat_id=5353, merchant=OTHER_MERCHANT)
    assert "Available: 7 USDT" in await chat.text_of("/balance")
    assert "Available: 0 USDT" in await chat.text_of("/balance", chat_id=5353)


async def test_a_name_in_a_list_cannot_break_the_html(chat: Chatting, world: MemoryWorld) -> None:
    world.ports.invoice_summaries.rows = [  # type: ignore[attr-defined]
        invoice_row(MERCHANT.merchant_id, "inv_<b>x</b>", 1_000_000, "<i>paid"),
    ]
    await linked(chat)
    listed = await chat.text_of("/invoices")
    assert "inv_&lt;b&gt;x&lt;/b&gt;" in listed and "&lt;i&gt;paid" in listed
