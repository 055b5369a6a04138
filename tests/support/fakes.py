"""In-memory fakes of the services' ports (app/services/ports.py), for the component tier.

Each one keeps what it was given where a test can look at it: the events a publisher sent, the
bookings of a ledger, the rows of a projection store. ``memory_ports()`` puts them together as
``app.bootstrap.Ports`` over in-memory tables, so a test builds the worker's real services with
``build_services`` and drives the agents' handlers and the views around them.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import orjson

from agents.invoices import InvoiceAgent
from app.adapters.auth.passwords import Argon2Passwords
from app.adapters.auth.tokens import TokenIssuer
from app.adapters.postgres.projections import decode_cursor, page_of
from app.bootstrap import Ports, Services, build_services
from app.domain.access import ALL_SCOPES, LastOwner, Role
from app.domain.commands import InvoiceCommand
from app.domain.deposit import DepositRegistration
from app.domain.errors import (
    AlreadyExists,
    CheckoutError,
    InsufficientBalance,
    RefundNotAllowed,
)
from app.domain.events import DomainEvent
from app.domain.invoice import Invoice
from app.domain.ledger import Movement
from app.domain.merchant import Merchant
from app.domain.money_out import OutgoingTransfer, Stage, Step, TransferKind
from app.domain.notifications import (
    DEFAULT_PREFERENCES,
    Notice,
    NoticeMessage,
    NotificationPreferences,
    Recipient,
)
from app.domain.observations import ChainHeadAdvanced
from app.domain.payout_schedule import PayoutSchedule
from app.domain.settlement import Settlement
from app.domain.webhooks import (
    Attempt,
    Delivery,
    EndpointSettings,
    Notification,
    ReplayJob,
    WebhookEndpoint,
)
from app.runtime.codecs import encode_invoice_command, encode_notice, encode_notification
from app.runtime.commands import read_answer
from app.runtime.dead_letters import DeadLetters
from app.services.credentials import API_KEY, SecretDigests, parse_credential
from app.services.errors import CommandTimeout, DependencyUnavailable
from app.services.live_view import (
    MAINNET_USDT_CONTRACT,
    State,
    View,
    apply_event,
    invoice_id_of,
    render_view,
)
from app.services.ports import (
    ApiKeyRecord,
    AuditEntry,
    Booking,
    ChatUser,
    ClaimedNotice,
    DeliveryQuery,
    IdempotentRequest,
    Invitation,
    InvoiceQuery,
    KeyCredentials,
    MerchantAccount,
    OneTimeSecret,
    Page,
    RefreshRecord,
    RefundContext,
    SettlementQuery,
    SigningAnswerRow,
    SignupRecord,
    StaleTransfer,
    UserRecord,
)
from app.services.rate_limits import Decision, Rate
from app.services.signup import InvalidSignupInvitation
from app.settings import Settings
from tables import Tables

# --- messages as a Faust stream hands them over ---------------------------------------------------


@dataclass
class FakeMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: Any
    headers: tuple[tuple[str, bytes], ...] = ()


class FakeEvent:
    """What an agent's handler gets from ``stream.events()``: the value as the topic's serializer
    decoded it, the key, and the message with the raw bytes as they were on the topic."""

    _offsets = itertools.count()

    def __init__(self, topic: str, value: Any, *, key: bytes | None = None, partition: int = 0):
        self.value = value
        self.key = key
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        self.message = FakeMessage(topic, partition, next(self._offsets), key, raw)
        self.acked = False

    def ack(self) -> bool:
        self.acked = True
        return True


class RecordingTopic:
    """A topic that keeps what is sent to it; a send is acknowledged at once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.records: list[tuple[bytes | None, bytes]] = []
        self.headers: list[Any] = []  # each record's Kafka headers, as sent (None: none)

    def get_topic_name(self) -> str:
        return self.name

    async def send(
        self, *, key: bytes | None = None, value: bytes, headers: Any = None, **_: Any
    ) -> asyncio.Future[None]:
        self.records.append((key, value))
        self.headers.append(headers)
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sent.set_result(None)
        return sent


class DeadLetterTopics:
    """``<topic>.dlq`` for any topic, recorded; ``dead_letters`` is the agents' real helper."""

    def __init__(self) -> None:
        self.topics: dict[str, RecordingTopic] = {}
        self.dead_letters = DeadLetters(cast(Any, self.topic_of))

    def topic_of(self, source_topic: str) -> RecordingTopic:
        return self.topics.setdefault(source_topic, RecordingTopic(f"{source_topic}.dlq"))

    def records(self, source_topic: str | None = None) -> list[dict[str, Any]]:
        """The dead-letter records (decoded), of one source topic or of all."""
        topics = [self.topics[source_topic]] if source_topic else list(self.topics.values())
        return [
            orjson.loads(value)
            for topic in topics
            if topic is not None
            for _, value in topic.records
        ]


# --- publishing -----------------------------------------------------------------------------------


@dataclass
class RecordingPublisher:
    """Every publishing port; ``fail_next`` makes the next publish of events raise once."""

    events: list[DomainEvent] = field(default_factory=list)
    invoice_commands: list[InvoiceCommand] = field(default_factory=list)
    registrations: list[DepositRegistration] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    notices: list[NoticeMessage] = field(default_factory=list)
    fail_next: BaseException | None = None

    async def publish_events(self, events: Iterable[DomainEvent]) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        self.events.extend(events)

    async def send_invoice_commands(self, commands: Iterable[InvoiceCommand]) -> None:
        self.invoice_commands.extend(commands)

    async def register_deposit(self, registration: DepositRegistration) -> None:
        self.registrations.append(registration)

    async def publish_notifications(self, notifications: Sequence[Notification]) -> None:
        # Through the real codec, as the intake agent will read them.
        for notification in notifications:
            encode_notification(notification)
        self.notifications.extend(notifications)

    async def publish_notices(self, notices: Sequence[NoticeMessage]) -> None:
        for notice in notices:
            encode_notice(notice)
        self.notices.extend(notices)

    def event_types(self) -> list[str]:
        return [event.event_type for event in self.events]

    def clear(self) -> None:
        self.events.clear()
        self.invoice_commands.clear()
        self.registrations.clear()
        self.notifications.clear()


class InProcessInvoiceAgent:
    """``InvoiceCommandGateway``: the command goes through the invoice agent's real handler here
    and now, and its answer, through JSON as over Redis, is read as ``AskInvoiceAgent`` reads it."""

    def __init__(self) -> None:
        self.agent: InvoiceAgent | None = None
        self.asked: list[InvoiceCommand] = []
        self.answers: list[dict[str, Any]] = []
        self.timeout = False

    async def ask(self, command: InvoiceCommand) -> Invoice:
        self.asked.append(command)
        if self.timeout:
            raise CommandTimeout("the invoice service did not answer in time")
        assert self.agent is not None, "memory_world() wires the agent in"
        reply_to = {"channel": "checkout:replies:test", "request_id": str(len(self.asked))}
        event = FakeEvent(
            "checkout.invoice-commands",
            encode_invoice_command(command, reply_to),
            key=command.aggregate_id.encode(),
        )
        answer = orjson.loads(orjson.dumps(await self.agent.handle(cast(Any, event))))
        self.answers.append(answer)
        return read_answer(answer, command)


class NoReplies:
    async def send_reply(self, reply_to: dict[str, str], answer: dict[str, Any]) -> None:
        """In process, the asker reads the handler's answer itself."""


# --- PostgreSQL -----------------------------------------------------------------------------------


class MemoryLedger:
    def __init__(self) -> None:
        self.bookings: dict[str, Booking] = {}
        self.settled: dict[str, Settlement] = {}
        self.times_booked: dict[str, int] = {}
        self.credits: dict[str, int] = {}

    async def book_settlement(self, settlement: Settlement) -> Booking:
        self.times_booked[settlement.settlement_id] = (
            self.times_booked.get(settlement.settlement_id, 0) + 1
        )
        if settlement.settlement_id not in self.bookings:
            account = f"merchant:{settlement.merchant_id}"
            self.credits[account] = self.credits.get(account, 0) + settlement.net_amount
            self.credits["platform_fees"] = (
                self.credits.get("platform_fees", 0) + settlement.platform_fee_amount
            )
            self.settled[settlement.settlement_id] = settlement
            self.bookings[settlement.settlement_id] = Booking(
                credited_at=datetime.now(UTC), reference=f"ledger:{len(self.bookings) + 1}"
            )
        return self.bookings[settlement.settlement_id]

    async def reverse_settlement(self, settlement: Settlement) -> Booking:
        key = f"reversal:{settlement.settlement_id}"
        self.times_booked[key] = self.times_booked.get(key, 0) + 1
        if key not in self.bookings:
            if settlement.settlement_id not in self.bookings:
                raise RuntimeError(f"settlement {settlement.settlement_id} was never booked")
            account = f"merchant:{settlement.merchant_id}"
            self.credits[account] = self.credits.get(account, 0) - settlement.net_amount
            self.credits["platform_fees"] = (
                self.credits.get("platform_fees", 0) - settlement.platform_fee_amount
            )
            self.bookings[key] = Booking(
                credited_at=datetime.now(UTC), reference=f"ledger:{len(self.bookings) + 1}"
            )
        return self.bookings[key]


class MemoryMoneyOut:
    """Refunds and payouts in memory (``MoneyOutStore``), over ``MemoryLedger``'s balances.

    The same rules as PostgreSQL's: one transfer per idempotency key, the balance and the
    invoice's refundable amount checked with the debit, a stale save refused, a movement booked
    once, events in an outbox. ``invoice_amounts`` and ``senders`` stand in for the invoice read
    model and the event store."""

    def __init__(self, ledger: MemoryLedger) -> None:
        self.ledger = ledger
        self.transfers: dict[str, OutgoingTransfer] = {}
        self.keys: dict[tuple[str, str, str], tuple[str, str]] = {}
        self.movements: dict[tuple[str, str], Movement] = {}
        self.outbox: list[tuple[int, dict[str, Any], bool]] = []
        self.answers: dict[str, SigningAnswerRow] = {}
        self.sent_at: dict[str, datetime] = {}
        self.invoice_amounts: dict[str, int] = {}
        self.invoice_confirmed: dict[str, int] = {}  # default: what was settled
        self.invoice_status: dict[str, str] = {}  # default: paid when settled
        self.senders: dict[str, tuple[str, ...]] = {}
        self.ours: set[str] = set()
        self.thresholds: dict[str, int] = {}

    def balance(self, account: str, currency: str = "USDT") -> int:
        booked = sum(
            entry.amount
            for movement in self.movements.values()
            for entry in movement.entries
            if entry.account == account and entry.currency == currency
        )
        return (self.ledger.credits.get(account, 0) if currency == "USDT" else 0) + booked

    async def request(
        self, step: Step, *, idempotency_key: str, fingerprint: str, refundable_check: bool = False
    ) -> tuple[OutgoingTransfer, bool]:
        transfer = step.state
        held = self.keys.get((transfer.merchant_id, transfer.kind.value, idempotency_key))
        if held is not None:
            if held[1] != fingerprint:
                raise AlreadyExists("Idempotency-Key was used for another request")
            return self.transfers[held[0]], True
        if transfer.source == "balance" and self.balance(f"merchant:{transfer.merchant_id}") < (
            transfer.amount + transfer.network_fee_charged
        ):
            raise InsufficientBalance("the available balance does not cover it", param="amount")
        if refundable_check and transfer.invoice_id is not None:
            context = await self.refund_context(transfer.merchant_id, transfer.invoice_id)
            left = (
                context.unsettled
                if transfer.source == "received"
                else (context.settled_gross or 0) - context.refunded
            )
            if transfer.amount > left:
                raise RefundNotAllowed("not that much left to refund", param="amount")
        self.transfers[transfer.transfer_id] = transfer
        self.keys[(transfer.merchant_id, transfer.kind.value, idempotency_key)] = (
            transfer.transfer_id,
            fingerprint,
        )
        self._commit(step)
        return transfer, False

    async def by_key(
        self, merchant_id: str, kind: TransferKind, key: str
    ) -> tuple[OutgoingTransfer, str] | None:
        held = self.keys.get((merchant_id, kind.value, key))
        return None if held is None else (self.transfers[held[0]], held[1])

    async def refund_context(self, merchant_id: str, invoice_id: str) -> RefundContext:
        gross = next(
            (
                s.gross_amount
                for s in self.ledger.settled.values()
                if s.invoice_id == invoice_id and s.merchant_id == merchant_id
            ),
            None,
        )
        refunds = [
            t
            for t in self.transfers.values()
            if t.invoice_id == invoice_id and t.stage is not Stage.FAILED
        ]
        return RefundContext(
            gross,
            self.invoice_amounts.get(invoice_id),
            sum(t.amount for t in refunds if t.source == "balance"),
            self.senders.get(invoice_id, ()),
            confirmed=self.invoice_confirmed.get(invoice_id, gross or 0),
            status=self.invoice_status.get(invoice_id, "paid" if gross is not None else None),
            refunded_received=sum(t.amount for t in refunds if t.source == "received"),
        )

    async def payout_threshold(self, merchant_id: str) -> int | None:
        return self.thresholds.get(merchant_id)

    async def is_ours(self, address: str) -> bool:
        return address in self.ours

    async def get(
        self, transfer_id: str, *, merchant_id: str | None = None
    ) -> OutgoingTransfer | None:
        found = self.transfers.get(transfer_id)
        if found is None or (merchant_id is not None and found.merchant_id != merchant_id):
            return None
        return found

    async def list(
        self,
        merchant_id: str,
        kind: TransferKind,
        *,
        limit: int,
        before: tuple[datetime, str] | None = None,
        invoice_id: str | None = None,
    ) -> builtins.list[OutgoingTransfer]:
        rows = sorted(
            (
                t
                for t in self.transfers.values()
                if t.merchant_id == merchant_id
                and t.kind is kind
                and (invoice_id is None or t.invoice_id == invoice_id)
                and (before is None or (t.created_at, t.transfer_id) < before)
            ),
            key=lambda t: (t.created_at, t.transfer_id),
            reverse=True,
        )
        return rows[:limit]

    async def open_transfers(self, limit: int) -> builtins.list[OutgoingTransfer]:
        open_stages = (Stage.APPROVED, Stage.SIGNING, Stage.BROADCAST)
        rows = [t for t in self.transfers.values() if t.stage in open_stages]
        return sorted(rows, key=lambda t: (t.approved_at or t.created_at, t.transfer_id))[:limit]

    async def waiting_for_approval(self, limit: int) -> builtins.list[OutgoingTransfer]:
        rows = [t for t in self.transfers.values() if t.stage is Stage.REQUESTED]
        return sorted(rows, key=lambda t: (t.created_at, t.transfer_id))[:limit]

    async def save(self, before: OutgoingTransfer, step: Step) -> None:
        current = self.transfers.get(before.transfer_id)
        same = current is not None and (
            current.stage,
            current.version,
            current.attempt.number if current.attempt else 0,
        ) == (before.stage, before.version, before.attempt.number if before.attempt else 0)
        if not same:
            raise StaleTransfer(f"{before.transfer_id} changed since it was read")
        self.transfers[before.transfer_id] = step.state
        self._commit(step)

    async def mark_request_sent(self, transfer: OutgoingTransfer, at: datetime) -> None:
        self.sent_at[transfer.transfer_id] = at

    async def request_sent_at(self, transfer_id: str) -> datetime | None:
        return self.sent_at.get(transfer_id)

    async def record_answer(self, answer: SigningAnswerRow) -> None:
        self.answers.setdefault(answer.request_id, answer)

    async def answer(self, request_id: str) -> SigningAnswerRow | None:
        return self.answers.get(request_id)

    async def unpublished(self, limit: int) -> builtins.list[tuple[int, dict[str, Any]]]:
        return [(seq, payload) for seq, payload, done in self.outbox if not done][:limit]

    async def mark_published(self, seqs: Sequence[int]) -> None:
        self.outbox = [(seq, p, done or seq in seqs) for seq, p, done in self.outbox]

    def _commit(self, step: Step) -> None:
        if step.movement is not None:
            key = (step.movement.kind, step.movement.reference)
            self.movements.setdefault(key, step.movement)
        known = {payload["event_id"] for _, payload, _ in self.outbox}
        for event in step.events:
            payload = orjson.loads(event.model_dump_json())
            if payload["event_id"] not in known:
                self.outbox.append((len(self.outbox) + 1, payload, False))


class MemoryPayoutSchedules:
    def __init__(self) -> None:
        self.schedules: dict[str, PayoutSchedule] = {}

    async def get(self, merchant_id: str) -> PayoutSchedule | None:
        return self.schedules.get(merchant_id)

    async def put(self, schedule: PayoutSchedule) -> PayoutSchedule:
        self.schedules[schedule.merchant_id] = schedule
        return schedule

    async def delete(self, merchant_id: str) -> bool:
        return self.schedules.pop(merchant_id, None) is not None

    async def all(self) -> builtins.list[PayoutSchedule]:
        return sorted(self.schedules.values(), key=lambda s: s.merchant_id)


class MemoryNotificationPreferences:
    def __init__(self) -> None:
        self.chosen: dict[str, tuple[str, NotificationPreferences]] = {}

    async def get(self, user_id: str) -> NotificationPreferences | None:
        found = self.chosen.get(user_id)
        return None if found is None else found[1]

    async def put(
        self, user_id: str, merchant_id: str, preferences: NotificationPreferences
    ) -> None:
        self.chosen[user_id] = (merchant_id, preferences)


class MemoryNotices:
    """``NoticeStore`` in memory: the merchant's users from ``MemoryUsers``, their preferences
    from ``MemoryNotificationPreferences``, a queue and Telegram links of its own."""

    def __init__(self, users: MemoryUsers, preferences: MemoryNotificationPreferences) -> None:
        self._users = users
        self._preferences = preferences
        self.queued: dict[str, NoticeMessage] = {}
        self.finished: dict[str, tuple[str, str | None]] = {}
        self.tokens: dict[str, tuple[str, str, datetime, bool]] = {}
        self.chats: dict[str, tuple[int, str | None]] = {}

    async def recipients(self, merchant_id: str) -> list[Recipient]:
        found = []
        for user in await self._users.users(merchant_id):
            if user.disabled_at is not None:
                continue
            chosen = await self._preferences.get(user.user_id)
            chat = self.chats.get(user.user_id)
            found.append(
                Recipient(
                    user_id=user.user_id,
                    merchant_id=merchant_id,
                    email=user.email if user.email_verified_at is not None else None,
                    preferences=chosen or DEFAULT_PREFERENCES,
                    telegram_chat_id=None if chat is None else chat[0],
                )
            )
        return found

    async def merchants_wanting(self, notice: Notice) -> list[str]:
        wanting = set()
        for user in self._users.by_id.values():
            if user.disabled_at is not None:
                continue
            chosen = await self._preferences.get(user.user_id)
            preferences = chosen or DEFAULT_PREFERENCES
            if user.merchant_id and any(notice in n for n in preferences.channels.values()):
                wanting.add(user.merchant_id)
        return sorted(wanting)

    async def enqueue(self, messages: Sequence[NoticeMessage]) -> list[str]:
        """Like ``ON CONFLICT (notice_id) DO NOTHING``: the first of an id wins, within the
        batch too; the ids that were new."""
        queued = []
        for message in messages:
            if message.notice_id not in self.queued:
                self.queued[message.notice_id] = message
                queued.append(message.notice_id)
        return queued

    async def claim_due(self, limit: int, lease_seconds: float) -> list[ClaimedNotice]:
        return []  # component tests look at the queue; the sending is tested on PostgreSQL

    async def finish(
        self,
        notice_id: str,
        status: str,
        *,
        sent_to: str | None = None,
        provider_id: str | None = None,
        error: str | None = None,
    ) -> None:
        self.finished[notice_id] = (status, error)

    async def retry_later(self, notice_id: str, delay_seconds: float, error: str) -> None:
        self.finished.pop(notice_id, None)

    async def deliveries(self, user_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The rows ``PostgresNotices.deliveries`` gives, newest (last queued) first."""
        rows = []
        for message in reversed(self.queued.values()):
            if message.user_id != user_id:
                continue
            status, error = self.finished.get(message.notice_id, ("pending", None))
            rows.append(
                {
                    "notice_id": message.notice_id,
                    "channel": str(message.channel),
                    "notice": str(message.about.notice),
                    "subject_id": message.about.subject_id,
                    "status": status,
                    "attempts": 0 if status == "pending" else 1,
                    "last_error": error,
                    "created_at": EPOCH,
                    "finished_at": None if status == "pending" else EPOCH,
                }
            )
        return rows[:limit]

    async def add_link_token(
        self, token: str, user_id: str, merchant_id: str, expires_at: datetime
    ) -> None:
        # The user's earlier unused tokens stop working, as in PostgreSQL.
        for known, (user, merchant, expires, _) in list(self.tokens.items()):
            if user == user_id:
                self.tokens[known] = (user, merchant, expires, True)
        self.tokens[token] = (user_id, merchant_id, expires_at, False)

    async def redeem_link_token(
        self, token: str, chat_id: int, username: str | None
    ) -> ChatUser | None:
        found = self.tokens.get(token)
        if found is None or found[3] or found[2] <= datetime.now(UTC):
            return None
        user_id, merchant_id, expires_at, _ = found
        self.tokens[token] = (user_id, merchant_id, expires_at, True)
        self.chats = {u: c for u, c in self.chats.items() if c[0] != chat_id}
        self.chats[user_id] = (chat_id, username)
        user = self._users.by_id[user_id]
        return ChatUser(user_id, merchant_id, user.role, chat_id)

    async def chat_user(self, chat_id: int) -> ChatUser | None:
        for user_id, (linked, _) in self.chats.items():
            user = self._users.by_id.get(user_id)
            if linked == chat_id and user is not None and user.merchant_id is not None:
                return ChatUser(user_id, user.merchant_id, user.role, chat_id)
        return None

    async def telegram_chat(self, user_id: str) -> dict[str, Any] | None:
        chat = self.chats.get(user_id)
        if chat is None:
            return None
        return {"chat_id": chat[0], "username": chat[1], "linked_at": EPOCH}

    async def unlink_chat(self, user_id: str) -> bool:
        return self.chats.pop(user_id, None) is not None


MERCHANT = Merchant("mer_shop", "Test Shop", Decimal("1.0"), None)
OTHER_MERCHANT = Merchant("mer_other", "Other Shop", Decimal("2.5"), None)
# Real credentials (app/services/credentials.py), every scope: what create-merchant hands out.
SHOP_API_KEY = "ck_00000000000005a0_shop-secret-shop-secret-shop-secret-00001"
OTHER_API_KEY = "ck_00000000000007b0_other-secret-other-secret-other-secret-01"
TEST_PEPPER = "test pepper of API keys, thirty-two characters or more"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class MemoryMerchantAccounts:
    def __init__(self, merchants: Iterable[Merchant] = (MERCHANT, OTHER_MERCHANT)) -> None:
        self.by_id = {m.merchant_id: MerchantAccount(m, EPOCH, None) for m in merchants}

    async def account(self, merchant_id: str) -> MerchantAccount | None:
        return self.by_id.get(merchant_id)

    async def accounts(self, *, after: str | None, limit: int) -> list[MerchantAccount]:
        ids = sorted(i for i in self.by_id if after is None or i > after)
        return [self.by_id[i] for i in ids[:limit]]

    async def update(
        self, merchant_id: str, changes: Mapping[str, Decimal | int | None]
    ) -> MerchantAccount | None:
        account = self.by_id.get(merchant_id)
        if account is None:
            return None
        merchant = replace(account.merchant, **changes)  # type: ignore[arg-type]
        self.by_id[merchant_id] = replace(account, merchant=merchant)
        return self.by_id[merchant_id]

    async def set_suspended(self, merchant_id: str, suspended: bool) -> MerchantAccount | None:
        account = self.by_id.get(merchant_id)
        if account is None:
            return None
        moment = datetime.now(UTC) if suspended else None
        self.by_id[merchant_id] = replace(account, suspended_at=moment)
        return self.by_id[merchant_id]


class MemoryApiKeys:
    def __init__(self, merchants: MemoryMerchantAccounts, digests: SecretDigests) -> None:
        self._merchants = merchants
        self.rows: dict[str, tuple[ApiKeyRecord, bytes, bytes | None]] = {}
        for key, merchant in ((SHOP_API_KEY, MERCHANT), (OTHER_API_KEY, OTHER_MERCHANT)):
            parsed = parse_credential(API_KEY, key)
            assert parsed is not None
            record = ApiKeyRecord(
                parsed.credential_id, merchant.merchant_id, "default key", ALL_SCOPES, EPOCH
            )
            self.rows[record.key_id] = (record, digests.of(parsed.secret), None)

    async def add(self, key: ApiKeyRecord, secret_hmac: bytes) -> None:
        self.rows[key.key_id] = (key, secret_hmac, None)

    async def credentials(self, key_id: str) -> KeyCredentials | None:
        row = self.rows.get(key_id)
        if row is None or row[0].revoked_at is not None:
            return None
        account = self._merchants.by_id[row[0].merchant_id]
        return KeyCredentials(
            row[0], row[1], row[2], account.merchant, account.suspended_at is not None
        )

    async def keys(self, merchant_id: str) -> list[ApiKeyRecord]:
        return [row[0] for row in self.rows.values() if row[0].merchant_id == merchant_id]

    async def revoke(self, merchant_id: str, key_id: str) -> ApiKeyRecord | None:
        row = self.rows.get(key_id)
        if row is None or row[0].merchant_id != merchant_id or row[0].revoked_at is not None:
            return None
        revoked = replace(row[0], revoked_at=datetime.now(UTC))
        self.rows[key_id] = (revoked, row[1], row[2])
        return revoked

    async def roll(
        self, merchant_id: str, key_id: str, secret_hmac: bytes, previous_valid_until: datetime
    ) -> ApiKeyRecord | None:
        row = self.rows.get(key_id)
        if row is None or row[0].merchant_id != merchant_id or row[0].revoked_at is not None:
            return None
        rolled = replace(
            row[0], rolled_at=datetime.now(UTC), previous_valid_until=previous_valid_until
        )
        self.rows[key_id] = (rolled, secret_hmac, row[1])
        return rolled


class MemoryUsers:
    def __init__(self) -> None:
        self.by_id: dict[str, UserRecord] = {}
        self.invitations: dict[str, Invitation] = {}
        self.refresh: dict[str, RefreshRecord] = {}

    async def add_user(self, user: UserRecord) -> None:
        if any(known.email == user.email for known in self.by_id.values()):
            raise AlreadyExists(f"{user.email} has an account")
        self.by_id[user.user_id] = user

    async def user(self, user_id: str) -> UserRecord | None:
        return self.by_id.get(user_id)

    async def user_by_email(self, email: str) -> UserRecord | None:
        return next((u for u in self.by_id.values() if u.email == email), None)

    async def users(self, merchant_id: str) -> list[UserRecord]:
        return [u for u in self.by_id.values() if u.merchant_id == merchant_id]

    async def set_password(self, user_id: str, password_hash: str) -> None:
        self.by_id[user_id] = replace(self.by_id[user_id], password_hash=password_hash)

    async def set_role(self, merchant_id: str, user_id: str, role: Role) -> UserRecord | None:
        user = self.by_id.get(user_id)
        if user is None or user.merchant_id != merchant_id or user.disabled_at is not None:
            return None
        if role is not Role.OWNER:
            self._keep_an_owner(merchant_id, user_id)
        self.by_id[user_id] = replace(user, role=role)
        return self.by_id[user_id]

    async def disable(self, merchant_id: str, user_id: str) -> UserRecord | None:
        user = self.by_id.get(user_id)
        if user is None or user.merchant_id != merchant_id or user.disabled_at is not None:
            return None
        self._keep_an_owner(merchant_id, user_id)
        self.by_id[user_id] = replace(user, disabled_at=datetime.now(UTC))
        return self.by_id[user_id]

    def _keep_an_owner(self, merchant_id: str, leaving: str) -> None:
        owners = [
            u
            for u in self.by_id.values()
            if u.merchant_id == merchant_id and u.role is Role.OWNER and u.disabled_at is None
        ]
        if any(u.user_id == leaving for u in owners) and not any(
            u.user_id != leaving and u.password_hash is not None for u in owners
        ):
            raise LastOwner("a merchant keeps at least one owner who can sign in")

    async def add_invitation(self, invitation: Invitation) -> None:
        self.invitations[invitation.invitation_id] = invitation

    async def invitation(self, invitation_id: str) -> Invitation | None:
        return self.invitations.get(invitation_id)

    async def accept_invitation(self, invitation_id: str, password_hash: str) -> bool:
        invitation = self.invitations[invitation_id]
        if invitation.accepted_at is not None:
            return False
        self.invitations[invitation_id] = replace(invitation, accepted_at=datetime.now(UTC))
        await self.set_password(invitation.user_id, password_hash)
        user = self.by_id[invitation.user_id]
        self.by_id[user.user_id] = replace(
            user, email_verified_at=user.email_verified_at or datetime.now(UTC)
        )
        return True

    async def add_refresh(self, token: RefreshRecord) -> None:
        self.refresh[token.token_id] = token

    async def refresh_token(self, token_id: str) -> RefreshRecord | None:
        token = self.refresh.get(token_id)
        if token is None:
            return None
        revoked = any(
            t.family_id == token.family_id and t.revoked_at is not None
            for t in self.refresh.values()
        )
        return replace(token, family_revoked=revoked)

    async def replace_refresh(self, token_id: str) -> bool:
        token = self.refresh[token_id]
        if token.replaced_at is not None or token.revoked_at is not None:
            return False
        self.refresh[token_id] = replace(token, replaced_at=datetime.now(UTC))
        return True

    async def revoke_family(self, family_id: str) -> None:
        for token_id, token in self.refresh.items():
            if token.family_id == family_id and token.revoked_at is None:
                self.refresh[token_id] = replace(token, revoked_at=datetime.now(UTC))

    async def revoke_user_tokens(self, user_id: str) -> None:
        for token_id, token in self.refresh.items():
            if token.user_id == user_id and token.revoked_at is None:
                self.refresh[token_id] = replace(token, revoked_at=datetime.now(UTC))


class MemoryAuditLog:
    def __init__(self) -> None:
        self.entries_written: list[AuditEntry] = []

    async def append(self, entry: AuditEntry) -> None:
        self.entries_written.append(
            replace(entry, entry_id=len(self.entries_written) + 1, occurred_at=datetime.now(UTC))
        )

    async def entries(
        self, merchant_id: str | None, *, after: int | None, limit: int
    ) -> list[AuditEntry]:
        return [
            entry
            for entry in self.entries_written
            if (merchant_id is None or entry.merchant_id == merchant_id)
            and (after is None or (entry.entry_id or 0) > after)
        ][:limit]


class MemoryAccessChanges:
    def __init__(self) -> None:
        self.healthy = True
        self.announced: list[str] = []

    async def announce(self, subject: str) -> None:
        self.announced.append(subject)


class MemoryLimiter:
    """GCRA as the Redis script computes it: integer microseconds on this process's clock.

    (In float seconds, ``now + 3600 - 3600`` can land a hair above ``now`` and refuse a first
    request under a one-an-hour quota: a test failed on it once in three runs.)"""

    def __init__(self) -> None:
        self.tat: dict[str, int] = {}

    async def hit(self, key: str, rate: Rate, *, cost: int = 1) -> Decision:
        return self._decide(key, rate, cost, spend=True)

    async def peek(self, key: str, rate: Rate) -> Decision:
        return self._decide(key, rate, 1, spend=False)

    async def refund(self, key: str, rate: Rate) -> None:
        if key in self.tat:
            interval = _interval_us(rate)
            self.tat[key] = max(_now_us(), self.tat[key] - interval)

    def _decide(self, key: str, rate: Rate, cost: int, *, spend: bool) -> Decision:
        now = _now_us()
        interval = _interval_us(rate)
        tolerance = interval * rate.count
        tat = max(self.tat.get(key, now), now)
        new_tat = tat + cost * interval
        if now < new_tat - tolerance:
            remaining = (tolerance - (tat - now)) // interval
            return Decision(
                False, rate.count, remaining, (tat - now) / 1e6, (new_tat - tolerance - now) / 1e6
            )
        if spend:
            self.tat[key] = new_tat
            tat = new_tat
        remaining = (tolerance - (tat - now)) // interval
        return Decision(True, rate.count, remaining, (tat - now) / 1e6, 0.0)


def _now_us() -> int:
    return time.monotonic_ns() // 1000


def _interval_us(rate: Rate) -> int:
    return max(1, round(rate.period * 1_000_000) // rate.count)  # as the Redis adapter


class MemoryIdempotencyKeys:
    def __init__(self) -> None:
        self.held: dict[tuple[str, str], IdempotentRequest] = {}

    async def find(self, merchant_id: str, key: str) -> IdempotentRequest | None:
        return self.held.get((merchant_id, key))

    async def claim(
        self, merchant_id: str, key: str, request: IdempotentRequest
    ) -> IdempotentRequest:
        return self.held.setdefault((merchant_id, key), request)


@dataclass(frozen=True)
class AllocatedAddress:
    index: int
    address: str


# Valid base58check Tron addresses (derived from the development xpub), one per invoice.
DEPOSIT_ADDRESSES = (
    "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8",
    "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf",
    "TLyqzVGLV1srkB7dToTAEqgDSfPtXRJZYH",
    "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
)


class MemoryAddresses:
    def __init__(self, addresses: Sequence[str] = DEPOSIT_ADDRESSES) -> None:
        self._free = list(addresses)
        self.allocated: dict[str, AllocatedAddress] = {}

    async def allocate(self, invoice_id: str) -> AllocatedAddress:
        if invoice_id not in self.allocated:
            index = len(self.allocated)
            self.allocated[invoice_id] = AllocatedAddress(index, self._free[index])
        return self.allocated[invoice_id]


class MemoryProjections:
    """The event store (one row per event id) and the count of times each event was applied."""

    def __init__(self) -> None:
        self.event_store: dict[str, tuple[DomainEvent, int | None, int | None]] = {}
        self.applied: list[str] = []
        self.failures: list[BaseException] = []
        self.refuse: set[str] = set()  # event ids PostgreSQL refuses, alone or in a batch
        self.batches: list[int] = []  # the size of each batch applied

    async def apply(self, event: DomainEvent, partition: int | None, offset: int | None) -> None:
        if self.failures:
            raise self.failures.pop(0)
        if str(event.event_id) in self.refuse:
            raise ValueError(f"aggregate version of {event.event_id} is taken")
        self.applied.append(str(event.event_id))
        self.event_store.setdefault(str(event.event_id), (event, partition, offset))

    async def apply_batch(
        self, batch: Sequence[tuple[DomainEvent, int | None, int | None]]
    ) -> None:
        """All or nothing, as one PostgreSQL transaction: a refused event refuses the batch."""
        if self.failures:
            raise self.failures.pop(0)
        refused = [
            str(event.event_id) for event, _, _ in batch if str(event.event_id) in self.refuse
        ]
        if refused:
            raise ValueError(f"aggregate version of {refused[0]} is taken")
        self.batches.append(len(batch))
        for event, partition, offset in batch:
            self.applied.append(str(event.event_id))
            self.event_store.setdefault(str(event.event_id), (event, partition, offset))


class MemoryInvoiceSummaries:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.asked: list[tuple[str, InvoiceQuery]] = []

    async def list(self, merchant_id: str, query: InvoiceQuery) -> Page:
        self.asked.append((merchant_id, query))
        rows = [row for row in self.rows if row["merchant_id"] == merchant_id]
        return Page(rows[: query.limit], None)


class MemoryReports:
    """The read models' rows as a test sets them (micro-USDT), and what was asked."""

    def __init__(self) -> None:
        self.summaries: dict[str, dict[str, Any]] = {}
        self.days: dict[str, list[dict[str, Any]]] = {}
        self.balances: dict[str, dict[str, int]] = {}
        self.revenue: list[dict[str, Any]] = []
        self.platform_days: dict[date, dict[str, Any]] = {}
        self.asked: list[tuple[Any, ...]] = []

    async def summary(self, merchant_id: str) -> dict[str, Any] | None:
        self.asked.append(("summary", merchant_id))
        return self.summaries.get(merchant_id)

    async def daily(self, merchant_id: str, first: date, last: date) -> list[dict[str, Any]]:
        self.asked.append(("daily", merchant_id, first, last))
        return [r for r in self.days.get(merchant_id, []) if first <= r["day"] <= last]

    async def merchant_days(self, day: date) -> list[dict[str, Any]]:
        self.asked.append(("merchant_days", day))
        return [
            {"merchant_id": merchant_id, **row}
            for merchant_id, rows in sorted(self.days.items())
            for row in rows
            if row["day"] == day
        ]

    async def platform_day(self, day: date) -> dict[str, Any]:
        self.asked.append(("platform_day", day))
        return self.platform_days.get(day, {})

    async def platform_revenue(self, first: date, last: date) -> list[dict[str, Any]]:
        self.asked.append(("platform_revenue", first, last))
        return [r for r in self.revenue if first <= r["day"] <= last]

    async def balance(self, merchant_id: str) -> dict[str, int]:
        self.asked.append(("balance", merchant_id))
        return self.balances.get(merchant_id, {"available": 0, "incoming": 0, "outgoing": 0})


class MemoryExports:
    """Rows a test sets, handed out in pages of ``page`` like PostgresExports."""

    def __init__(self, page: int = 2) -> None:
        self.page = page
        self.settlement_rows: list[dict[str, Any]] = []
        self.invoice_rows: list[dict[str, Any]] = []
        self.asked: list[tuple[str, str, datetime, datetime]] = []
        self.fail_after_pages: int | None = None

    def settlements(
        self, merchant_id: str, start: datetime, end: datetime
    ) -> AsyncIterator[list[dict[str, Any]]]:
        self.asked.append(("settlements", merchant_id, start, end))
        return self._pages(self.settlement_rows)

    def invoices(
        self, merchant_id: str, start: datetime, end: datetime
    ) -> AsyncIterator[list[dict[str, Any]]]:
        self.asked.append(("invoices", merchant_id, start, end))
        return self._pages(self.invoice_rows)

    async def _pages(self, rows: list[dict[str, Any]]) -> AsyncIterator[list[dict[str, Any]]]:
        for number, start in enumerate(range(0, len(rows), self.page)):
            if self.fail_after_pages is not None and number >= self.fail_after_pages:
                raise ConnectionError("PostgreSQL went away")
            yield rows[start : start + self.page]


class MemorySettlementRecords:
    """Settlements as the ledger booked them."""

    def __init__(self, ledger: MemoryLedger) -> None:
        self._ledger = ledger

    async def get(self, merchant_id: str, settlement_id: str) -> dict[str, Any] | None:
        rows = [row for row in self._rows(merchant_id) if row["settlement_id"] == settlement_id]
        return rows[0] if rows else None

    async def list(self, merchant_id: str, query: SettlementQuery) -> Page:
        after = None if query.cursor is None else decode_cursor(query.cursor)
        rows = sorted(
            (
                row
                for row in self._rows(merchant_id)
                if query.invoice_id in (None, row["invoice_id"])
                and (not query.status or row["status"] in query.status)
                and (query.created_from is None or row["created_at"] >= query.created_from)
                and (query.created_to is None or row["created_at"] < query.created_to)
                and (after is None or (row["created_at"], row["settlement_id"]) < after)
            ),
            key=lambda row: (row["created_at"], row["settlement_id"]),
            reverse=True,
        )
        return page_of(rows, query.limit, "settlement_id")

    def _rows(self, merchant_id: str) -> builtins.list[dict[str, Any]]:
        rows = []
        for settlement_id, booking in self._ledger.bookings.items():
            settlement = self._ledger.settled[settlement_id]
            if settlement.merchant_id != merchant_id:
                continue
            rows.append(
                {
                    "settlement_id": settlement.settlement_id,
                    "invoice_id": settlement.invoice_id,
                    "merchant_id": settlement.merchant_id,
                    "gross_amount": settlement.gross_amount,
                    "platform_fee_amount": settlement.platform_fee_amount,
                    "platform_fee_percentage": str(settlement.platform_fee_percentage),
                    "net_amount": settlement.net_amount,
                    "status": str(settlement.status),
                    "created_at": settlement.created_at,
                    "completed_at": booking.credited_at,
                }
            )
        return rows


@dataclass(frozen=True)
class SentEmail:
    to: str
    subject: str
    text: str
    html: str


class RecordingMailer:
    """The emails the platform sent; ``failing`` makes the next sends fail like a dead server."""

    def __init__(self) -> None:
        self.sent: list[SentEmail] = []
        self.failing = False

    async def send(self, to: str, subject: str, text: str, html: str) -> None:
        if self.failing:
            raise DependencyUnavailable("the mail server 127.0.0.1:1025 did not take the message")
        self.sent.append(SentEmail(to, subject, text, html))


class MemorySignups:
    """Sign-ups written into the memory merchants and users, all or nothing like PostgreSQL."""

    def __init__(self, merchants: MemoryMerchantAccounts, users: MemoryUsers) -> None:
        self._merchants = merchants
        self._users = users
        self.verifications: dict[str, OneTimeSecret] = {}
        self.invitations: dict[str, OneTimeSecret] = {}

    async def register(self, signup: SignupRecord) -> None:
        if await self._users.user_by_email(signup.owner.email) is not None:
            raise AlreadyExists(f"{signup.owner.email} has an account already", param="email")
        if signup.invitation_id is not None:
            held = self.invitations[signup.invitation_id]
            if held.used_at is not None or held.expires_at <= datetime.now(UTC):
                raise InvalidSignupInvitation("the invitation was used already or expired")
            self.invitations[signup.invitation_id] = replace(held, used_at=datetime.now(UTC))
        merchant = signup.merchant
        self._merchants.by_id[merchant.merchant_id] = MerchantAccount(
            merchant, datetime.now(UTC), None
        )
        await self._users.add_user(signup.owner)
        self.verifications[signup.verification.secret_id] = signup.verification

    async def add_verification(self, verification: OneTimeSecret) -> None:
        self.verifications[verification.secret_id] = verification

    async def verification(self, verification_id: str) -> OneTimeSecret | None:
        return self.verifications.get(verification_id)

    async def use_verification(self, verification_id: str) -> str | None:
        held = self.verifications.get(verification_id)
        if held is None or held.used_at is not None or held.expires_at <= datetime.now(UTC):
            return None
        self.verifications[verification_id] = replace(held, used_at=datetime.now(UTC))
        assert held.user_id is not None
        user = self._users.by_id[held.user_id]
        self._users.by_id[user.user_id] = replace(
            user, email_verified_at=user.email_verified_at or datetime.now(UTC)
        )
        return held.user_id

    async def add_signup_invitation(self, invitation: OneTimeSecret, note: str | None) -> None:
        self.invitations[invitation.secret_id] = invitation

    async def signup_invitation(self, invitation_id: str) -> OneTimeSecret | None:
        return self.invitations.get(invitation_id)


class MemoryWebhookStore:
    """Endpoints and queued deliveries; enough for the fan-out, the intake and the webhook API."""

    def __init__(self) -> None:
        self.endpoints_by_id: dict[str, WebhookEndpoint] = {}
        self.queued: dict[str, Notification] = {}
        self.enqueue_calls = 0
        self.enqueue_batches: list[int] = []  # the size of each batch queued
        self.enqueue_failures: list[BaseException] = []  # raised by the next enqueue_batch
        self.enabled_endpoints_calls = 0
        self.events: list[dict[str, Any]] = []
        self.replays: dict[str, ReplayJob] = {}
        self._ids = itertools.count(1)

    def add_endpoint(
        self, merchant_id: str, event_types: Sequence[str] = ("*",), **changes: Any
    ) -> WebhookEndpoint:
        now = datetime.now(UTC)
        endpoint = WebhookEndpoint(
            endpoint_id=f"we_{next(self._ids):024x}",
            merchant_id=merchant_id,
            url="https://shop.example/hooks",
            description=None,
            event_types=tuple(event_types),
            enabled=True,
            disabled_reason=None,
            disabled_at=None,
            failing_since=None,
            previous_secret_expires_at=None,
            version=1,
            created_at=now,
            updated_at=now,
        )
        endpoint = replace(endpoint, **changes)
        self.endpoints_by_id[endpoint.endpoint_id] = endpoint
        return endpoint

    async def subscribers(self, merchant_id: str, event_type: str) -> list[WebhookEndpoint]:
        endpoints = await self.enabled_endpoints(merchant_id)
        return [endpoint for endpoint in endpoints if endpoint.wants(event_type)]

    async def enabled_endpoints(self, merchant_id: str) -> list[WebhookEndpoint]:
        self.enabled_endpoints_calls += 1
        return [
            endpoint
            for endpoint in self.endpoints_by_id.values()
            if endpoint.merchant_id == merchant_id and endpoint.enabled
        ]

    async def enqueue(self, notification: Notification) -> bool:
        self.enqueue_calls += 1
        if notification.delivery_id in self.queued:
            return False
        self.queued[notification.delivery_id] = notification
        return True

    async def enqueue_batch(self, notifications: Sequence[Notification]) -> set[str]:
        if self.enqueue_failures:
            raise self.enqueue_failures.pop(0)
        self.enqueue_batches.append(len(notifications))
        queued: set[str] = set()
        for notification in notifications:
            if notification.delivery_id not in self.queued:
                self.queued[notification.delivery_id] = notification
                queued.add(notification.delivery_id)
        return queued

    async def create_endpoint(
        self, merchant_id: str, settings: EndpointSettings
    ) -> tuple[WebhookEndpoint, str]:
        endpoint = self.add_endpoint(
            merchant_id,
            settings.event_types,
            url=settings.url,
            description=settings.description,
            enabled=settings.enabled,
        )
        return endpoint, "whsec_test"

    async def endpoints(self, merchant_id: str) -> list[WebhookEndpoint]:
        return [e for e in self.endpoints_by_id.values() if e.merchant_id == merchant_id]

    async def endpoint(self, merchant_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        endpoint = self.endpoints_by_id.get(endpoint_id)
        return endpoint if endpoint is not None and endpoint.merchant_id == merchant_id else None

    async def update_endpoint(
        self, merchant_id: str, endpoint_id: str, changes: Mapping[str, Any]
    ) -> WebhookEndpoint | None:
        endpoint = await self.endpoint(merchant_id, endpoint_id)
        if endpoint is None:
            return None
        updated = replace(endpoint, **changes, version=endpoint.version + 1)
        self.endpoints_by_id[endpoint_id] = updated
        return updated

    async def delete_endpoint(self, merchant_id: str, endpoint_id: str) -> bool:
        if await self.endpoint(merchant_id, endpoint_id) is None:
            return False
        del self.endpoints_by_id[endpoint_id]
        return True

    async def rotate_secret(
        self, merchant_id: str, endpoint_id: str, grace: timedelta
    ) -> tuple[WebhookEndpoint, str] | None:
        endpoint = await self.endpoint(merchant_id, endpoint_id)
        return None if endpoint is None else (endpoint, "whsec_rotated")

    async def deliveries(
        self, merchant_id: str, endpoint_id: str | None, query: DeliveryQuery
    ) -> tuple[list[Delivery], bool]:
        return [], False

    async def delivery(
        self, merchant_id: str, delivery_id: str
    ) -> tuple[Delivery, dict[str, Any], list[Attempt]] | None:
        return None

    async def event_counts(
        self, merchant_id: str, start: datetime, end: datetime
    ) -> dict[str, int]:
        counts: dict[str, int] = {}
        for event in self.events:
            counts[event["event_type"]] = counts.get(event["event_type"], 0) + 1
        return counts

    async def add_replay(self, job: ReplayJob) -> ReplayJob:
        self.replays[job.replay_id] = replace(job, created_at=datetime.now(UTC))
        return self.replays[job.replay_id]

    async def replay_job(self, merchant_id: str, replay_id: str) -> ReplayJob | None:
        job = self.replays.get(replay_id)
        return job if job is not None and job.merchant_id == merchant_id else None


class FakeDispatcher:
    def __init__(self) -> None:
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1


# --- Redis ----------------------------------------------------------------------------------------


class MemorySubscription:
    def __init__(self, invoice_id: str) -> None:
        self.invoice_id = invoice_id
        self.closed = False
        self.queue: asyncio.Queue[View | None] = asyncio.Queue()

    async def next(self) -> View | None:
        view = await self.queue.get()
        if view is None:
            self.closed = True
        return view

    def __aiter__(self) -> AsyncIterator[View]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[View]:
        while (view := await self.next()) is not None:
            yield view


class MemoryLiveViews:
    """The live views as Redis keeps them, folded by the same code (app/services/live_view.py)."""

    def __init__(self, token_contract: str = MAINNET_USDT_CONTRACT) -> None:
        self.token_contract = token_contract
        self.states: dict[str, State] = {}
        self.subscriptions: dict[str, list[MemorySubscription]] = {}
        self.failures: list[BaseException] = []
        self.down = False

    async def apply(self, event: DomainEvent) -> View | None:
        if self.failures:
            raise self.failures.pop(0)
        invoice_id = invoice_id_of(event)
        if invoice_id is None:
            return None
        applied = apply_event(
            self.states.get(invoice_id), event, token_contract=self.token_contract
        )
        if applied is None:
            return None
        self.states[invoice_id] = applied.state
        if applied.view is not None:
            for subscription in self.subscriptions.get(invoice_id, []):
                subscription.queue.put_nowait(applied.view)
        return applied.view

    async def current(self, invoice_id: str) -> View | None:
        if self.down:
            raise ConnectionError("Redis is down")
        return render_view(self.states.get(invoice_id), token_contract=self.token_contract)

    @contextlib.asynccontextmanager
    async def subscribe(self, invoice_id: str) -> AsyncIterator[MemorySubscription]:
        subscription = MemorySubscription(invoice_id)
        self.subscriptions.setdefault(invoice_id, []).append(subscription)
        try:
            yield subscription
        finally:
            self.subscriptions[invoice_id].remove(subscription)

    async def aclose(self) -> None:
        for subscriptions in self.subscriptions.values():
            for subscription in subscriptions:
                subscription.queue.put_nowait(None)


# --- the whole set --------------------------------------------------------------------------------


@dataclass
class MemoryWorld:
    """The ports of one worker, in memory, and the services built on them."""

    ports: Ports
    services: Services
    publisher: RecordingPublisher
    ledger: MemoryLedger
    projections: MemoryProjections
    webhooks: MemoryWebhookStore
    dispatcher: FakeDispatcher
    live_views: MemoryLiveViews
    gateway: InProcessInvoiceAgent
    dead_letter_topics: DeadLetterTopics
    merchant_accounts: MemoryMerchantAccounts
    users: MemoryUsers
    audit_log: MemoryAuditLog
    settings: Settings

    @property
    def tables(self) -> Tables:
        return self.ports.tables

    @property
    def dead_letters(self) -> DeadLetters:
        return self.dead_letter_topics.dead_letters


class MemoryChainProgress:
    """``ChainProgress`` in memory: the chain time is the oldest of the partitions' heads noted
    (flushed or not: one process, nothing to share); None before any."""

    def __init__(self) -> None:
        self.heads: dict[int, ChainHeadAdvanced] = {}

    def note(self, partition: int, head: ChainHeadAdvanced) -> None:
        if head.block_timestamp is not None:
            self.heads[partition] = head

    async def flush(self) -> int:
        return len(self.heads)

    async def chain_time(self) -> datetime | None:
        stamps = [head.block_timestamp for head in self.heads.values() if head.block_timestamp]
        return min(stamps) if stamps else None


def memory_world(settings: Settings | None = None) -> MemoryWorld:
    settings = settings or Settings(api_key_pepper=TEST_PEPPER)
    merchant_accounts = MemoryMerchantAccounts()
    users = MemoryUsers()
    audit_log = MemoryAuditLog()
    tables = Tables.in_memory()
    publisher = RecordingPublisher()
    ledger = MemoryLedger()
    projections = MemoryProjections()
    webhooks = MemoryWebhookStore()
    dispatcher = FakeDispatcher()
    live_views = MemoryLiveViews()
    gateway = InProcessInvoiceAgent()
    preferences = MemoryNotificationPreferences()
    ports = Ports(
        tables=tables,
        publisher=publisher,
        invoice_gateway=gateway,
        ledger=ledger,
        idempotency=MemoryIdempotencyKeys(),
        addresses=MemoryAddresses(),
        projections=projections,
        invoice_summaries=MemoryInvoiceSummaries(),
        reports=MemoryReports(),
        analytics=MemoryReports(),
        exports=MemoryExports(),
        settlement_records=MemorySettlementRecords(ledger),
        webhook_store=webhooks,
        dispatcher=dispatcher,
        replay_queue=FakeDispatcher(),
        live_views=live_views,
        api_keys=MemoryApiKeys(merchant_accounts, SecretDigests(settings.api_key_pepper)),
        users=users,
        merchant_accounts=merchant_accounts,
        audit_log=audit_log,
        access_changes=MemoryAccessChanges(),
        limiter=MemoryLimiter(),
        passwords=Argon2Passwords(),
        tokens=TokenIssuer(settings.jwt_secret.encode()),
        signups=MemorySignups(merchant_accounts, users),
        mailer=RecordingMailer(),
        money_out=MemoryMoneyOut(ledger),
        payout_schedules=MemoryPayoutSchedules(),
        notification_preferences=preferences,
        notices=MemoryNotices(users, preferences),
        notice_dispatcher=FakeDispatcher(),
        chain_progress=MemoryChainProgress(),
    )
    services = build_services(ports, settings)
    dead_letter_topics = DeadLetterTopics()
    gateway.agent = InvoiceAgent(
        services.invoice_commands, dead_letter_topics.dead_letters, NoReplies()
    )
    return MemoryWorld(
        ports,
        services,
        publisher,
        ledger,
        projections,
        webhooks,
        dispatcher,
        live_views,
        gateway,
        dead_letter_topics,
        merchant_accounts,
        users,
        audit_log,
        settings,
    )


def refusal_of(error: CheckoutError) -> tuple[str, str]:
    return type(error).__name__, error.code


class LocalRouting:
    """Owner routing when this worker owns every partition (one worker, in process)."""

    def __init__(self) -> None:
        self.served: list[tuple[str, str]] = []

    async def serve(self, request: Any, table: str, key: str, handler: Any) -> Any:
        self.served.append((table, key))
        return await handler(request)

    async def read_from_owner(self, table: str, key: str, path: str) -> Any | None:
        return None

    def is_local(self, table: str, key: str) -> bool:
        return True
