"""The merchants' Telegram bot: a client of the platform beside the dashboard and the API.

A merchant user links a chat with a one-time deep link (``/start <token>``, from the dashboard or
``POST /api/v1/notification-preferences/telegram-link``); the chat then acts as that user, with
their role's scopes as they are now: ``/balance``, ``/invoices`` (the last ten), ``/invoice
<amount> [description]`` (a new invoice, answered with its payment link and QR code), ``/payouts``.
An unlinked chat is told how to link and nothing else. Notices are pushed to linked chats by the
notice dispatcher (app/services/notices.py), not here.

Updates arrive by long polling (the leader polls: agents/notices.py) or at ``POST
/telegram/webhook``, which Telegram calls with the secret set by ``setWebhook`` (webhook mode).
"""

from __future__ import annotations

import hmac
import logging
import math
from datetime import UTC, datetime
from io import BytesIO
from typing import Any, Final

import segno
from aiogram import Bot, Dispatcher, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import BotCommand, BufferedInputFile, Message, Update
from aiohttp import web as aioweb

from app.domain.access import Principal, Scope
from app.domain.errors import CheckoutError, Forbidden
from app.domain.money import format_usdt
from app.domain.money_out import TransferKind
from app.services.access import AccessControl
from app.services.create_invoice import InvoiceCreation, request_fingerprint
from app.services.notices import TelegramLinks
from app.services.ports import InvoiceQuery, InvoiceSummaryReads, MoneyOutStore, ReportReads
from app.services.rate_limits import Limiter
from app.settings import Settings
from web.errors import ApiError
from web.requests import parse_create_invoice

logger = logging.getLogger(__name__)

WEBHOOK_PATH: Final = "/telegram/webhook"
SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
# An update is a few kilobytes; Telegram's own limit for what it posts is far below this.
MAX_UPDATE_BYTES: Final = 256 * 1024
MAX_COMMAND_ARGS: Final = 600

HELP: Final = (
    "<b>crypto-checkout</b>\n"
    "/balance — your USDT balance\n"
    "/invoices — the last ten invoices\n"
    "/invoice &lt;amount&gt; [description] — a new invoice, "
    "e.g. <code>/invoice 9.99 Coffee</code>\n"
    "/payouts — the last ten payouts\n"
    "Notices (paid invoices, payouts, …) arrive here as you chose on the dashboard."
)
# What Telegram's clients offer when the user types "/" (setMyCommands).
COMMANDS: Final = (
    ("balance", "Your USDT balance"),
    ("invoices", "The last ten invoices"),
    ("invoice", "A new invoice: /invoice 9.99 description"),
    ("payouts", "The last ten payouts"),
    ("help", "What the bot does"),
)
NOT_LINKED: Final = (
    "This chat is not linked to a crypto-checkout account. On the dashboard, or with "
    "<code>POST /api/v1/notification-preferences/telegram-link</code>, get a link and open it "
    "here."
)


def _escape(text: object) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class MerchantBot:
    """The bot's commands over the platform's use cases, as the chat's linked user."""

    def __init__(
        self,
        *,
        links: TelegramLinks,
        access: AccessControl,
        creation: InvoiceCreation,
        invoices: InvoiceSummaryReads,
        reports: ReportReads,
        money_out: MoneyOutStore,
        settings: Settings,
        limiter: Limiter,
    ) -> None:
        self._links = links
        self._access = access
        self._creation = creation
        self._invoices = invoices
        self._reports = reports
        self._money_out = money_out
        self._settings = settings
        self._limiter = limiter
        self._public_url = settings.public_url.rstrip("/")
        self.dispatcher = Dispatcher()
        self.dispatcher.include_router(self._router())

    def _router(self) -> Router:
        router = Router(name="merchant-bot")
        router.message(CommandStart(deep_link=True))(self.start_with_token)
        router.message(CommandStart())(self.start)
        router.message(Command("help"))(self.help)
        router.message(Command("balance"))(self.balance)
        router.message(Command("invoices"))(self.recent_invoices)
        router.message(Command("invoice"))(self.new_invoice)
        router.message(Command("payouts"))(self.payouts)
        router.message()(self.anything_else)
        return router

    async def feed(self, bot: Bot, update: Update) -> None:
        await self.dispatcher.feed_update(bot, update)

    @staticmethod
    async def announce_commands(bot: Bot) -> None:
        """Tell Telegram the commands, so its clients list them (each worker at start: the
        same list every time, so any of them saying it is enough)."""
        await bot.set_my_commands(
            [BotCommand(command=name, description=text) for name, text in COMMANDS]
        )

    # --- who the chat is --------------------------------------------------------------------

    async def _principal(self, message: Message) -> Principal | None:
        if message.chat.type != "private":
            return None  # a group's members are not the linked user
        chat = await self._links.chat_user(message.chat.id)
        if chat is None:
            return None
        try:
            return await self._access.user_principal(chat.user_id, chat.merchant_id)
        except CheckoutError:
            return None  # disabled, or moved to another merchant since

    async def _acting(self, message: Message, scope: Scope) -> Principal | None:
        """The chat's user if they may act with ``scope`` now, else None (and the chat is told
        why). A command spends the same rate budget as the user's API requests: creating an
        invoice the invoice_create tier, the rest the reads tier (web/rate_limits.py)."""
        principal = await self._principal(message)
        if principal is None:
            await message.answer(NOT_LINKED)
            return None
        try:
            principal.require(scope)
        except Forbidden as exc:
            await message.answer(f"Not allowed: {_escape(exc.message)}")
            return None
        tier, rate = (
            ("invoice_create", self._settings.rate_limit_invoice_create)
            if scope is Scope.INVOICES_WRITE
            else ("reads", self._settings.rate_limit_reads)
        )
        decision = await self._limiter.hit(f"{tier}:{principal.actor_id}", rate)
        if not decision.allowed:
            await message.answer(
                f"Too many requests; try again in {math.ceil(decision.retry_after)} s."
            )
            return None
        return principal

    # --- commands ---------------------------------------------------------------------------

    async def start_with_token(self, message: Message, command: CommandObject) -> None:
        token = (command.args or "").strip()
        if message.chat.type != "private" or message.from_user is None:
            await message.answer("Link crypto-checkout in a private chat with the bot.")
            return
        if not 1 <= len(token) <= 64:
            await message.answer("This link is not valid. Get a new one on the dashboard.")
            return
        linked = await self._links.link(token, message.chat.id, message.from_user.username)
        if linked is None:
            await message.answer(
                "This link is not valid any more (used, or older than 30 minutes). "
                "Get a new one on the dashboard."
            )
            return
        await message.answer(
            "Linked. Notices for your account will arrive here; /help lists the commands."
        )

    async def start(self, message: Message) -> None:
        principal = await self._principal(message)
        await message.answer(HELP if principal is not None else NOT_LINKED)

    async def help(self, message: Message) -> None:
        principal = await self._principal(message)
        await message.answer(HELP if principal is not None else NOT_LINKED)

    async def balance(self, message: Message) -> None:
        principal = await self._acting(message, Scope.REPORTS_READ)
        if principal is None or principal.merchant_id is None:
            return
        balance = await self._reports.balance(principal.merchant_id)
        await message.answer(
            f"<b>Balance</b>\nAvailable: {format_usdt(balance['available'])} USDT\n"
            f"Incoming (confirming): {format_usdt(balance['incoming'])} USDT\n"
            f"Outgoing (refunds, payouts on their way): {format_usdt(balance['outgoing'])} USDT"
        )

    async def recent_invoices(self, message: Message) -> None:
        principal = await self._acting(message, Scope.INVOICES_READ)
        if principal is None or principal.merchant_id is None:
            return
        page = await self._invoices.list(principal.merchant_id, InvoiceQuery(limit=10))
        if not page.rows:
            await message.answer("No invoices yet. Create one with /invoice 9.99")
            return
        lines = ["<b>Last invoices</b>"]
        for row in page.rows:
            exception = row.get("payment_exception")
            lines.append(
                f"<code>{_escape(row['invoice_id'])}</code> {format_usdt(int(row['amount']))} USDT"
                f" — {_escape(row['status'])}{f' ({_escape(exception)})' if exception else ''}"
            )
        await message.answer("\n".join(lines))

    async def new_invoice(self, message: Message, command: CommandObject) -> None:
        principal = await self._acting(message, Scope.INVOICES_WRITE)
        if principal is None:
            return
        args = (command.args or "").strip()
        if not args or len(args) > MAX_COMMAND_ARGS:
            await message.answer("Give an amount: <code>/invoice 9.99 [description]</code>")
            return
        amount, _, description = args.partition(" ")
        body: dict[str, Any] = {"amount": amount}
        if description.strip():
            body["description"] = description.strip()
        try:
            fields = parse_create_invoice(body, self._settings)
            # Telegram may deliver an update twice (a retried webhook, a poller restarted before
            # confirming it): the chat's message makes the key, so it is one invoice.
            invoice, _ = await self._creation.create(
                principal.require(Scope.INVOICES_WRITE),
                fields,
                now=datetime.now(UTC),
                idempotency_key=f"telegram:{message.chat.id}:{message.message_id}",
                fingerprint=request_fingerprint(body),
            )
        except CheckoutError as exc:  # ApiError too: the amount or description refused
            await message.answer(f"No invoice: {_escape(exc.message)}")
            return
        link = f"{self._public_url}/pay/{invoice.invoice_id}"
        qr = segno.make(link, error="m", micro=False)
        png = BytesIO()
        qr.save(png, kind="png", scale=8, border=4)
        caption = (
            f"Invoice <code>{_escape(invoice.invoice_id)}</code>: "
            f"{format_usdt(invoice.amount)} USDT\n"
            f'Pay here: <a href="{_escape(link)}">{_escape(link)}</a>\n'
            "I will tell you here when it is paid."
        )
        await message.answer_photo(
            BufferedInputFile(png.getvalue(), filename=f"{invoice.invoice_id}.png"),
            caption=caption,
        )

    async def payouts(self, message: Message) -> None:
        principal = await self._acting(message, Scope.PAYOUTS_READ)
        if principal is None or principal.merchant_id is None:
            return
        found = await self._money_out.list(principal.merchant_id, TransferKind.PAYOUT, limit=10)
        if not found:
            await message.answer("No payouts yet.")
            return
        lines = ["<b>Last payouts</b>"]
        for payout in found:
            lines.append(
                f"<code>{_escape(payout.transfer_id)}</code> {format_usdt(payout.amount)} USDT"
                f" → <code>{_escape(payout.to_address)}</code> — {_escape(payout.stage)}"
            )
        await message.answer("\n".join(lines))

    async def anything_else(self, message: Message) -> None:
        principal = await self._principal(message)
        await message.answer(HELP if principal is not None else NOT_LINKED)


class TelegramWebhook:
    """``POST /telegram/webhook``: updates from Telegram in webhook mode, checked by the secret
    given to ``setWebhook`` (in constant time), handed to the bot."""

    def __init__(self, bot: Bot, merchant_bot: MerchantBot, secret: str) -> None:
        self._bot = bot
        self._merchant_bot = merchant_bot
        self._secret = secret.encode()

    def add_routes(self, router: aioweb.UrlDispatcher) -> None:
        router.add_post(WEBHOOK_PATH, self.update)

    async def update(self, request: aioweb.Request) -> aioweb.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            raise ApiError(401, "telegram_secret_invalid", "not Telegram: the secret is wrong")
        if request.content_length is not None and request.content_length > MAX_UPDATE_BYTES:
            raise ApiError(413, "payload_too_large", "an update is at most 256 KiB")
        raw = await request.content.read(MAX_UPDATE_BYTES + 1)
        if len(raw) > MAX_UPDATE_BYTES:
            raise ApiError(413, "payload_too_large", "an update is at most 256 KiB")
        try:
            update = Update.model_validate_json(raw, context={"bot": self._bot})
        except ValueError as exc:
            raise ApiError(400, "telegram_update_invalid", f"not a Telegram update: {exc}") from exc
        try:
            await self._merchant_bot.feed(self._bot, update)
        except Exception:  # Telegram would redeliver forever; the error is ours to read
            logger.exception("Telegram update %s could not be handled", update.update_id)
        return aioweb.json_response({})
