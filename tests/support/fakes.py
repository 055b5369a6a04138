"""In-memory fakes of the services' ports (app/services/ports.py), for the component tier.

Each one keeps what it was given where a test can look at it: the events a publisher sent, the
bookings of a ledger, the rows of a projection store. ``memory_ports()`` puts them together as
``app.bootstrap.Ports`` over in-memory tables, so a test builds the worker's real services with
``build_services`` and drives the agents' handlers and the views around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import orjson

from agents.invoices import InvoiceAgent
from app.bootstrap import Ports, Services, build_services
from app.domain.commands import InvoiceCommand
from app.domain.deposit import DepositRegistration
from app.domain.errors import CheckoutError
from app.domain.events import DomainEvent
from app.domain.invoice import Invoice
from app.domain.merchant import Merchant
from app.domain.settlement import Settlement
from app.domain.webhooks import (
    Attempt,
    Delivery,
    EndpointSettings,
    Notification,
    WebhookEndpoint,
)
from app.runtime.codecs import encode_invoice_command, encode_notification
from app.runtime.commands import read_answer
from app.runtime.dead_letters import DeadLetters
from app.services.errors import CommandTimeout
from app.services.live_view import (
    MAINNET_USDT_CONTRACT,
    State,
    View,
    apply_event,
    invoice_id_of,
    render_view,
)
from app.services.ports import (
    Booking,
    DeliveryQuery,
    IdempotentRequest,
    InvoicePage,
    InvoiceQuery,
)
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

    def get_topic_name(self) -> str:
        return self.name

    async def send(
        self, *, key: bytes | None = None, value: bytes, **_: Any
    ) -> asyncio.Future[None]:
        self.records.append((key, value))
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


MERCHANT = Merchant("mer_shop", "Test Shop", Decimal("1.0"), None)
OTHER_MERCHANT = Merchant("mer_other", "Other Shop", Decimal("2.5"), None)
API_KEYS = {"ck_shop_key": MERCHANT, "ck_other_key": OTHER_MERCHANT}


class MemoryMerchants:
    def __init__(self, keys: Mapping[str, Merchant] = API_KEYS) -> None:
        self.keys = dict(keys)

    async def authenticate(self, api_key: str) -> Merchant | None:
        return self.keys.get(api_key)


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

    async def apply(self, event: DomainEvent, partition: int | None, offset: int | None) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.applied.append(str(event.event_id))
        self.event_store.setdefault(str(event.event_id), (event, partition, offset))


class MemoryInvoiceSummaries:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.asked: list[tuple[str, InvoiceQuery]] = []

    async def list(self, merchant_id: str, query: InvoiceQuery) -> InvoicePage:
        self.asked.append((merchant_id, query))
        rows = [row for row in self.rows if row["merchant_id"] == merchant_id]
        return InvoicePage(rows[: query.limit], None)


class MemorySettlementRecords:
    """Settlements as the ledger booked them."""

    def __init__(self, ledger: MemoryLedger) -> None:
        self._ledger = ledger

    async def get(self, merchant_id: str, settlement_id: str) -> dict[str, Any] | None:
        rows = [row for row in self._rows(merchant_id) if row["settlement_id"] == settlement_id]
        return rows[0] if rows else None

    async def recent(
        self, merchant_id: str, *, invoice_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        rows = [row for row in self._rows(merchant_id) if invoice_id in (None, row["invoice_id"])]
        return rows[:limit]

    def _rows(self, merchant_id: str) -> list[dict[str, Any]]:
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


class MemoryWebhookStore:
    """Endpoints and queued deliveries; enough for the fan-out, the intake and the webhook API."""

    def __init__(self) -> None:
        self.endpoints_by_id: dict[str, WebhookEndpoint] = {}
        self.queued: dict[str, Notification] = {}
        self.enqueue_calls = 0
        self.events: list[dict[str, Any]] = []
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
        return [
            endpoint
            for endpoint in self.endpoints_by_id.values()
            if endpoint.merchant_id == merchant_id
            and endpoint.enabled
            and endpoint.wants(event_type)
        ]

    async def enqueue(self, notification: Notification) -> bool:
        self.enqueue_calls += 1
        if notification.delivery_id in self.queued:
            return False
        self.queued[notification.delivery_id] = notification
        return True

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
        self, merchant_id: str, endpoint_id: str, query: DeliveryQuery
    ) -> tuple[list[Delivery], bool]:
        return [], False

    async def delivery(
        self, merchant_id: str, delivery_id: str
    ) -> tuple[Delivery, dict[str, Any], list[Attempt]] | None:
        return None

    async def events_between(
        self, merchant_id: str, start: datetime, end: datetime, limit: int
    ) -> list[dict[str, Any]]:
        return self.events[:limit]


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

    @property
    def tables(self) -> Tables:
        return self.ports.tables

    @property
    def dead_letters(self) -> DeadLetters:
        return self.dead_letter_topics.dead_letters


def memory_world(settings: Settings | None = None) -> MemoryWorld:
    tables = Tables.in_memory()
    publisher = RecordingPublisher()
    ledger = MemoryLedger()
    projections = MemoryProjections()
    webhooks = MemoryWebhookStore()
    dispatcher = FakeDispatcher()
    live_views = MemoryLiveViews()
    gateway = InProcessInvoiceAgent()
    ports = Ports(
        tables=tables,
        publisher=publisher,
        invoice_gateway=gateway,
        ledger=ledger,
        merchants=MemoryMerchants(),
        idempotency=MemoryIdempotencyKeys(),
        addresses=MemoryAddresses(),
        projections=projections,
        invoice_summaries=MemoryInvoiceSummaries(),
        settlement_records=MemorySettlementRecords(ledger),
        webhook_store=webhooks,
        dispatcher=dispatcher,
        live_views=live_views,
    )
    services = build_services(ports, settings or Settings())
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
