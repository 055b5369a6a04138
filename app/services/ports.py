"""The ports: what the use cases need from the world, as typed ``Protocol``s.

Each use case (app/services/*.py) takes the ports it uses as constructor arguments. The real
implementations are the adapters (app/adapters/), the Faust tables (tables/) and the Kafka side
of app/runtime/; app/bootstrap.py hands them in. The tests hand in in-memory fakes
(tests/support/fakes.py). Values that cross a port are domain objects or the small records here.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from app.domain.access import Role, Scope
from app.domain.analytics import AnalyticsMessage
from app.domain.commands import InvoiceCommand
from app.domain.deposit import ConfirmationWatch, DepositAccount, DepositRegistration
from app.domain.errors import RefundNotAllowed
from app.domain.events import DomainEvent
from app.domain.invoice import Invoice
from app.domain.merchant import Merchant
from app.domain.money_out import OutgoingTransfer, Step, TransferKind
from app.domain.notifications import Notice, NoticeMessage, NotificationPreferences, Recipient
from app.domain.observations import ChainHeadAdvanced
from app.domain.payout_schedule import PayoutSchedule
from app.domain.settlement import Settlement
from app.domain.statuses import InvoiceStatus, PaymentException, SettlementStatus
from app.domain.sweeps import Sweep, SweepStep
from app.domain.webhooks import (
    Attempt,
    Delivery,
    EndpointSettings,
    Notification,
    ReplayJob,
    WebhookEndpoint,
)

View = dict[str, Any]

# --- publishing (Kafka) ---------------------------------------------------------------------------


class EventPublisher(Protocol):
    """Domain events onto ``crypto-checkout.domain-events``, keyed by aggregate id."""

    async def publish_events(self, events: Iterable[DomainEvent]) -> None: ...


class InvoiceCommandSender(Protocol):
    """Commands to the invoice agent (from the payment agent and the expiry timer)."""

    async def send_invoice_commands(self, commands: Iterable[InvoiceCommand]) -> None: ...


class DepositRegistrar(Protocol):
    """Tell the payment agent which invoice a new deposit address belongs to."""

    async def register_deposit(self, registration: DepositRegistration) -> None: ...


class NotificationPublisher(Protocol):
    """Webhook deliveries onto ``crypto-checkout.notifications``."""

    async def publish_notifications(self, notifications: Sequence[Notification]) -> None: ...


class NoticePublisher(Protocol):
    """Notices onto ``crypto-checkout.notifications``, in order."""

    async def publish_notices(self, notices: Sequence[NoticeMessage]) -> None: ...


class Publisher(
    EventPublisher,
    InvoiceCommandSender,
    DepositRegistrar,
    NotificationPublisher,
    NoticePublisher,
    Protocol,
):
    """Every publishing port at once: what one Kafka producer does for the whole worker."""


class InvoiceCommandGateway(Protocol):
    """Send a command to the invoice's agent and wait for its answer (the HTTP side)."""

    async def ask(self, command: InvoiceCommand) -> Invoice: ...


# --- aggregates in Faust tables (tables/) ---------------------------------------------------------


class InvoiceStore(Protocol):
    def get(self, invoice_id: str) -> Invoice | None: ...

    def put(self, invoice: Invoice) -> None: ...


class ExpiryIndex(Protocol):
    """The invoices that can still expire, with when."""

    def track(self, invoice: Invoice) -> None: ...

    def open_invoices(self) -> list[tuple[str, datetime]]: ...


class DepositAccounts(Protocol):
    def get(self, deposit_address: str) -> DepositAccount | None: ...

    def put(self, account: DepositAccount) -> None: ...


class ConfirmationWatches(Protocol):
    def get(self, partition: int) -> ConfirmationWatch: ...

    def put(self, partition: int, watch: ConfirmationWatch) -> None: ...


class ChainProgress(Protocol):
    """How far every partition of deposits has processed the chain: what invoice expiry waits for.

    ``note`` is called by the payment agent after a partition's chain head (in memory, never
    failing, never waiting: the money path must not depend on it); the adapter stores the notes
    on ``flush``. ``chain_time`` is the block time every partition has processed, None
    while some partition has none on record (or the store cannot say).
    """

    def note(self, partition: int, head: ChainHeadAdvanced) -> None: ...

    async def flush(self) -> int:
        """Store the notes taken since the last flush (a timer, every second); how many."""

    async def chain_time(self) -> datetime | None: ...


class SettlementStore(Protocol):
    """Settlements by the id of the invoice they settle: its latest round, and each round a
    reorg reversed."""

    def get(self, invoice_id: str) -> Settlement | None: ...

    def of_round(self, invoice_id: str, settlement_round: int) -> Settlement | None: ...

    def put(self, settlement: Settlement) -> None: ...


# --- PostgreSQL -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Booking:
    """What the ledger holds for a settlement: when it was credited, and its reference."""

    credited_at: datetime
    reference: str


class Ledger(Protocol):
    async def book_settlement(self, settlement: Settlement) -> Booking:
        """Credit net and fee exactly once; the first booking's data however often asked."""

    async def reverse_settlement(self, settlement: Settlement) -> Booking:
        """Book ``settlement`` back exactly once (net and fee returned to the customer funds by
        a reversal entry; nothing deleted); the reversal's data however often asked."""
        ...


class MerchantStore(Protocol):
    async def get(self, merchant_id: str) -> Merchant | None: ...


@dataclass(frozen=True)
class IdempotentRequest:
    request_sha256: str
    invoice_id: str
    command: dict[str, Any]


class IdempotencyKeys(Protocol):
    async def find(self, merchant_id: str, key: str) -> IdempotentRequest | None: ...

    async def claim(
        self, merchant_id: str, key: str, request: IdempotentRequest
    ) -> IdempotentRequest:
        """Record ``request`` under ``key`` unless the key is taken; what the key holds."""
        ...


class AllocatedAddress(Protocol):
    @property
    def address(self) -> str: ...


class AddressAllocator(Protocol):
    async def allocate(self, invoice_id: str) -> AllocatedAddress:
        """The invoice's deposit address: a new one, or the one it already has."""
        ...


# A domain event with the partition and offset it was read from (None outside Kafka).
Projected = tuple[DomainEvent, int | None, int | None]


class ProjectionStore(Protocol):
    async def apply(self, event: DomainEvent, partition: int | None, offset: int | None) -> None:
        """Record ``event`` in the event store and the read models; a repeat changes nothing."""
        ...

    async def apply_batch(self, batch: Sequence[Projected]) -> None:
        """``apply`` for every event of ``batch`` in order, all or none of them."""
        ...


@dataclass(frozen=True)
class Page:
    """One page of a list, newest first; ``next_cursor`` is None on the last page."""

    rows: list[dict[str, Any]]
    next_cursor: str | None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


@dataclass(frozen=True)
class SettlementQuery:
    """Which of a merchant's settlements a list asks for (bounds as in ``InvoiceQuery``)."""

    invoice_id: str | None = None
    status: tuple[SettlementStatus, ...] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None
    limit: int = 20
    cursor: str | None = None


@dataclass(frozen=True)
class InvoiceQuery:
    """Which of a merchant's invoices a list asks for; every filter given must hold.

    ``created_from`` is inclusive and ``created_to`` exclusive, so consecutive windows never
    overlap; ``cursor`` is the ``next_cursor`` of the page before.
    """

    status: tuple[InvoiceStatus, ...] = ()
    payment_exception: tuple[PaymentException, ...] = ()
    order_id: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    limit: int = 20
    cursor: str | None = None


class InvoiceSummaryReads(Protocol):
    async def list(self, merchant_id: str, query: InvoiceQuery) -> Page: ...


class ReportReads(Protocol):
    """The merchant's reports from the read models (docs/reports.md); amounts in micro-USDT."""

    async def summary(self, merchant_id: str) -> dict[str, Any] | None: ...

    async def daily(self, merchant_id: str, first: date, last: date) -> list[dict[str, Any]]: ...

    async def balance(self, merchant_id: str) -> dict[str, int]: ...

    async def platform_revenue(self, first: date, last: date) -> list[dict[str, Any]]: ...


class AnalyticsReads(Protocol):
    """A day's rows of the read models for crypto-checkout.analytics (micro-USDT, ms)."""

    async def merchant_days(self, day: date) -> list[dict[str, Any]]: ...

    async def platform_day(self, day: date) -> dict[str, Any]: ...


class AnalyticsSink(Protocol):
    async def publish_analytics(self, messages: Sequence[AnalyticsMessage]) -> None:
        """Publish in order; returns once Kafka has them all."""
        ...


class ExportReads(Protocol):
    """The rows of the CSV exports, a page at a time, oldest first; amounts in micro-USDT."""

    def settlements(
        self, merchant_id: str, start: datetime, end: datetime
    ) -> AsyncIterator[list[dict[str, Any]]]: ...

    def invoices(
        self, merchant_id: str, start: datetime, end: datetime
    ) -> AsyncIterator[list[dict[str, Any]]]: ...


class SettlementReads(Protocol):
    """Settlements as the ledger recorded them, for the merchant API."""

    async def get(self, merchant_id: str, settlement_id: str) -> dict[str, Any] | None: ...

    async def list(self, merchant_id: str, query: SettlementQuery) -> Page: ...


class WebhookSubscriptions(Protocol):
    async def subscribers(self, merchant_id: str, event_type: str) -> list[WebhookEndpoint]:
        """The merchant's enabled endpoints that want this event type."""
        ...


class DeliveryQueue(Protocol):
    async def enqueue(self, notification: Notification) -> bool:
        """Queue a delivery unless it is queued already (same delivery id)."""
        ...

    async def enqueue_batch(self, notifications: Sequence[Notification]) -> set[str]:
        """``enqueue`` each, in order, in one statement; the delivery ids queued now."""
        ...


@dataclass(frozen=True)
class DeliveryQuery:
    """One page of a delivery log: newest first, after ``after_seq`` if given; of one
    aggregate (an invoice) when ``aggregate_id`` is given."""

    status: str | None = None
    aggregate_id: str | None = None
    limit: int = 20
    after_seq: int | None = None


class WebhookStore(WebhookSubscriptions, DeliveryQueue, Protocol):
    """Endpoints, their secrets, and the delivery log (the merchant's webhook API)."""

    async def enabled_endpoints(self, merchant_id: str) -> list[WebhookEndpoint]:
        """Every enabled endpoint of the merchant, whatever it subscribes to."""
        ...

    async def create_endpoint(
        self, merchant_id: str, settings: EndpointSettings
    ) -> tuple[WebhookEndpoint, str]: ...

    async def endpoints(self, merchant_id: str) -> list[WebhookEndpoint]: ...

    async def endpoint(self, merchant_id: str, endpoint_id: str) -> WebhookEndpoint | None: ...

    async def update_endpoint(
        self, merchant_id: str, endpoint_id: str, changes: Mapping[str, Any]
    ) -> WebhookEndpoint | None: ...

    async def delete_endpoint(self, merchant_id: str, endpoint_id: str) -> bool: ...

    async def rotate_secret(
        self, merchant_id: str, endpoint_id: str, grace: timedelta
    ) -> tuple[WebhookEndpoint, str] | None: ...

    async def deliveries(
        self, merchant_id: str, endpoint_id: str | None, query: DeliveryQuery
    ) -> tuple[list[Delivery], bool]:
        """The log of one endpoint, or of all the merchant's endpoints when None."""
        ...

    async def delivery(
        self, merchant_id: str, delivery_id: str
    ) -> tuple[Delivery, dict[str, Any], list[Attempt]] | None: ...

    async def event_counts(
        self, merchant_id: str, start: datetime, end: datetime
    ) -> dict[str, int]:
        """How many of the merchant's events of each type [start, end) holds."""
        ...

    async def add_replay(self, job: ReplayJob) -> ReplayJob: ...

    async def replay_job(self, merchant_id: str, replay_id: str) -> ReplayJob | None: ...


class DeliveryDispatcher(Protocol):
    def wake(self) -> None:
        """New deliveries are queued: look for them now rather than at the next poll."""


# --- Redis ----------------------------------------------------------------------------------------


class ViewSubscription(Protocol):
    invoice_id: str
    closed: bool

    async def next(self) -> View | None: ...

    def __aiter__(self) -> AsyncIterator[View]: ...


class LiveViews(Protocol):
    """The customers' live invoice views (app/services/live_view.py folds them)."""

    async def apply(self, event: DomainEvent) -> View | None: ...

    async def current(self, invoice_id: str) -> View | None: ...

    def subscribe(self, invoice_id: str) -> AbstractAsyncContextManager[ViewSubscription]: ...

    async def aclose(self) -> None: ...


# --- access: keys, users, the admin, the audit log (app/services/access.py, users.py, admin.py) -


@dataclass(frozen=True)
class ApiKeyRecord:
    """An API key as its merchant sees it (never its secret)."""

    key_id: str
    merchant_id: str
    name: str
    scopes: frozenset[Scope]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    rolled_at: datetime | None = None
    previous_valid_until: datetime | None = None  # a rolled key's old secret works until then
    created_by: str | None = None


@dataclass(frozen=True)
class KeyCredentials:
    """What checking a key needs: its record, its secrets' digests, its merchant's state."""

    key: ApiKeyRecord
    secret_hmac: bytes
    previous_secret_hmac: bytes | None
    merchant: Merchant
    suspended: bool


class ApiKeyStore(Protocol):
    async def add(self, key: ApiKeyRecord, secret_hmac: bytes) -> None: ...

    async def credentials(self, key_id: str) -> KeyCredentials | None:
        """The key unless unknown or revoked (expiry is the caller's to check)."""
        ...

    async def keys(self, merchant_id: str) -> list[ApiKeyRecord]: ...

    async def revoke(self, merchant_id: str, key_id: str) -> ApiKeyRecord | None: ...

    async def roll(
        self, merchant_id: str, key_id: str, secret_hmac: bytes, previous_valid_until: datetime
    ) -> ApiKeyRecord | None: ...


@dataclass(frozen=True)
class MerchantAccount:
    """A merchant as the platform admin sees it."""

    merchant: Merchant
    created_at: datetime
    suspended_at: datetime | None


class MerchantAccounts(Protocol):
    async def account(self, merchant_id: str) -> MerchantAccount | None: ...

    async def accounts(self, *, after: str | None, limit: int) -> list[MerchantAccount]: ...

    async def update(
        self, merchant_id: str, changes: Mapping[str, Decimal | int | None]
    ) -> MerchantAccount | None:
        """Set ``fee_percentage`` and/or ``confirmation_override`` (None clears it)."""
        ...

    async def set_suspended(self, merchant_id: str, suspended: bool) -> MerchantAccount | None: ...


@dataclass(frozen=True)
class UserRecord:
    user_id: str
    email: str
    merchant_id: str | None  # None: a platform admin
    role: Role
    created_at: datetime
    password_hash: str | None = None  # None: invited, no password yet
    disabled_at: datetime | None = None
    created_by: str | None = None
    # None: signed up, the emailed link not followed yet (no API key until then)
    email_verified_at: datetime | None = None


@dataclass(frozen=True)
class Invitation:
    invitation_id: str
    user_id: str
    secret_hmac: bytes
    expires_at: datetime
    accepted_at: datetime | None = None


@dataclass(frozen=True)
class RefreshRecord:
    token_id: str
    family_id: str  # one sign-in: every token a refresh chain made from it
    user_id: str
    secret_hmac: bytes
    expires_at: datetime
    replaced_at: datetime | None = None
    revoked_at: datetime | None = None
    family_revoked: bool = False  # any token of the session revoked: the session has ended


@dataclass(frozen=True)
class SignupRecord:
    """What one sign-up writes in one transaction: the merchant, its owner, the emailed link,
    and the operator's invitation it uses up (when sign-up is by invitation)."""

    merchant: Merchant
    owner: UserRecord
    verification: OneTimeSecret
    invitation_id: str | None = None


@dataclass(frozen=True)
class OneTimeSecret:
    """An emailed verification link or an operator's sign-up invitation, as stored."""

    secret_id: str
    secret_hmac: bytes
    expires_at: datetime
    used_at: datetime | None = None
    user_id: str | None = None  # whose email a verification link proves


class SignupStore(Protocol):
    """Sign-ups, their email verifications and the operators' sign-up invitations."""

    async def register(self, signup: SignupRecord) -> None:
        """All of it or nothing: ``AlreadyExists`` when the email has an account,
        ``InvalidSignupInvitation`` when the invitation was used or expired meanwhile."""
        ...

    async def add_verification(self, verification: OneTimeSecret) -> None: ...

    async def verification(self, verification_id: str) -> OneTimeSecret | None: ...

    async def use_verification(self, verification_id: str) -> str | None:
        """Marks the link used and its user verified, once (None when used or expired)."""
        ...

    async def add_signup_invitation(self, invitation: OneTimeSecret, note: str | None) -> None: ...

    async def signup_invitation(self, invitation_id: str) -> OneTimeSecret | None: ...


class Mailer(Protocol):
    """Sends email (app/adapters/email/smtp.py). Raises ``DependencyUnavailable`` on failure."""

    async def send(self, to: str, subject: str, text: str, html: str) -> None: ...


class TelegramSender(Protocol):
    """Sends a bot message to a chat (app/adapters/telegram/). Returns the message id; raises
    ``NoticeRejected`` for a chat that cannot be written to (unknown, blocked the bot) and
    ``DependencyUnavailable`` when the Bot API may take it later."""

    async def send_text(self, chat_id: int, html: str) -> str: ...


class SmsSender(Protocol):
    """Sends a text message through an SMS provider (app/adapters/sms/). Returns the provider's
    message id; raises ``NoticeRejected`` when the provider refuses it for good (an invalid
    number) and ``DependencyUnavailable`` when it may take it later."""

    async def send(self, to: str, body: str) -> str: ...


class UserStore(Protocol):
    async def add_user(self, user: UserRecord) -> None:
        """Raises ``AlreadyExists`` when the email has an account."""
        ...

    async def user(self, user_id: str) -> UserRecord | None: ...

    async def user_by_email(self, email: str) -> UserRecord | None: ...

    async def users(self, merchant_id: str) -> list[UserRecord]: ...

    async def set_password(self, user_id: str, password_hash: str) -> None: ...

    async def set_role(self, merchant_id: str, user_id: str, role: Role) -> UserRecord | None:
        """None unless an enabled user of the merchant; ``LastOwner`` (atomically checked) if
        no other owner who can sign in would be left."""
        ...

    async def disable(self, merchant_id: str, user_id: str) -> UserRecord | None:
        """As ``set_role``."""
        ...

    async def add_invitation(self, invitation: Invitation) -> None: ...

    async def invitation(self, invitation_id: str) -> Invitation | None: ...

    async def accept_invitation(self, invitation_id: str, password_hash: str) -> bool:
        """Set the invitee's password, once: False if the invitation was used already."""
        ...

    async def add_refresh(self, token: RefreshRecord) -> None: ...

    async def refresh_token(self, token_id: str) -> RefreshRecord | None: ...

    async def replace_refresh(self, token_id: str) -> bool:
        """Mark the token used, once: False if it was used or revoked already."""
        ...

    async def revoke_family(self, family_id: str) -> None: ...

    async def revoke_user_tokens(self, user_id: str) -> None: ...


class PasswordHashing(Protocol):
    dummy_hash: str

    def check_policy(self, password: str) -> None:
        """Raise a ``CheckoutError`` naming why ``password`` may not be chosen."""
        ...

    async def hash(self, password: str) -> str: ...

    async def verify(self, stored: str, password: str) -> bool: ...

    def needs_rehash(self, stored: str) -> bool: ...


class AccessClaims(Protocol):
    @property
    def user_id(self) -> str: ...

    @property
    def merchant_id(self) -> str | None: ...

    @property
    def role(self) -> str: ...

    @property
    def expires_at(self) -> int: ...


class AccessTokens(Protocol):
    @property
    def access_ttl(self) -> timedelta: ...

    def issue_access(
        self, user_id: str, merchant_id: str | None, role: str
    ) -> tuple[str, AccessClaims]: ...

    def verify_access(self, token: str) -> AccessClaims:
        """The claims, or ``Unauthenticated`` (a subclass) saying why not."""
        ...


class AccessChanges(Protocol):
    """Tells every worker that a key, a user or a merchant changed (Redis pub/sub), so cached
    credentials are dropped at once; ``healthy`` is False while the worker may miss news."""

    healthy: bool

    async def announce(self, subject: str) -> None: ...


@dataclass(frozen=True)
class AuditEntry:
    action: str
    result: str
    actor_kind: str  # api_key, user, operator, anonymous
    merchant_id: str | None = None
    actor_id: str | None = None
    actor_role: str | None = None
    target_id: str | None = None
    request_id: str | None = None
    client_address: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    entry_id: int | None = None
    occurred_at: datetime | None = None


class AuditLog(Protocol):
    async def append(self, entry: AuditEntry) -> None: ...

    async def entries(
        self, merchant_id: str | None, *, after: int | None, limit: int
    ) -> list[AuditEntry]:
        """Oldest first, from ``after`` (an entry id); ``merchant_id`` None: every merchant's."""
        ...


# --- money out (docs/money-out.md) ----------------------------------------------------------------


class StaleTransfer(Exception):
    """The transfer moved on since it was read (another driver, or an admin): read it again."""


@dataclass(frozen=True)
class RefundContext:
    """What a refund of one invoice may take: what was settled, what was refunded already."""

    settled_gross: int | None  # None: not settled
    invoice_amount: int | None
    refunded: int  # refunds from the balance, not failed
    senders: tuple[str, ...]  # who paid the invoice, most recent first
    confirmed: int = 0  # what the invoice received and counts as confirmed
    status: str | None = None  # the invoice's status (the read model)
    refunded_received: int = 0  # refunds of money it received and never settled, not failed

    def covers_received_refunds(self) -> bool:
        """Whether the confirmed money no settlement took covers every refund of received money
        not failed: a reorg may have taken a confirmed payment after such a refund was asked."""
        return self.confirmed - (self.settled_gross or 0) >= self.refunded_received

    def sole_sender(self, invoice_id: str) -> str:
        """Who paid, as a refund's default address; refused when several addresses paid."""
        if len(self.senders) != 1:
            raise RefundNotAllowed(
                f"invoice {invoice_id} was paid from {len(self.senders)} addresses;"
                " give the address to refund to",
                param="address",
            )
        return self.senders[0]

    @property
    def unsettled(self) -> int:
        """Confirmed money the invoice holds that no settlement took and no refund returned:
        payments after it expired or after it was paid."""
        return max(0, self.confirmed - (self.settled_gross or 0) - self.refunded_received)


@dataclass(frozen=True)
class SigningAnswerRow:
    """The signer's answer to one signing request, as the workers received it."""

    request_id: str
    txid: str | None
    signature: str | None
    refused: str | None
    message: str | None


class MoneyOutStore(Protocol):
    """Refunds and payouts with the ledger they move (app/adapters/postgres/money_out.py)."""

    async def request(
        self, step: Step, *, idempotency_key: str, fingerprint: str, refundable_check: bool = False
    ) -> tuple[OutgoingTransfer, bool]: ...

    async def by_key(
        self, merchant_id: str, kind: TransferKind, key: str
    ) -> tuple[OutgoingTransfer, str] | None: ...

    async def refund_context(self, merchant_id: str, invoice_id: str) -> RefundContext: ...

    async def payout_threshold(self, merchant_id: str) -> int | None: ...

    async def is_ours(self, address: str) -> bool: ...

    async def get(
        self, transfer_id: str, *, merchant_id: str | None = None
    ) -> OutgoingTransfer | None: ...

    async def list(
        self,
        merchant_id: str,
        kind: TransferKind,
        *,
        limit: int,
        before: tuple[datetime, str] | None = None,
        invoice_id: str | None = None,
    ) -> builtins.list[OutgoingTransfer]: ...

    async def open_transfers(self, limit: int) -> builtins.list[OutgoingTransfer]: ...

    async def waiting_for_approval(self, limit: int) -> builtins.list[OutgoingTransfer]: ...

    async def save(self, before: OutgoingTransfer, step: Step) -> None: ...

    async def mark_request_sent(self, transfer: OutgoingTransfer, at: datetime) -> None: ...

    async def request_sent_at(self, transfer_id: str) -> datetime | None: ...

    async def record_answer(self, answer: SigningAnswerRow) -> None: ...

    async def answer(self, request_id: str) -> SigningAnswerRow | None: ...

    async def unpublished(self, limit: int) -> builtins.list[tuple[int, dict[str, Any]]]: ...

    async def mark_published(self, seqs: Sequence[int]) -> None: ...


class SigningRequests(Protocol):
    """Signing requests onto ``checkout.signing-requests`` (the signer answers on
    ``checkout.signatures``), keyed by request id; returns once Kafka has it."""

    async def send_signing_request(self, request_id: str, body: Mapping[str, Any]) -> None: ...


class PayoutScheduleStore(Protocol):
    """Merchants' standing payout orders (app/adapters/postgres/payout_schedules.py)."""

    async def get(self, merchant_id: str) -> PayoutSchedule | None: ...

    async def put(self, schedule: PayoutSchedule) -> PayoutSchedule: ...

    async def delete(self, merchant_id: str) -> bool: ...

    async def all(self) -> builtins.list[PayoutSchedule]: ...


# --- notifications (docs/notifications.md) ------------------------------------------------------


class NotificationPreferenceStore(Protocol):
    """Merchant users' notification preferences (adapters/postgres/notification_preferences.py)."""

    async def get(self, user_id: str) -> NotificationPreferences | None:
        """The user's choice, or None if they never made one (the defaults apply)."""
        ...

    async def put(
        self, user_id: str, merchant_id: str, preferences: NotificationPreferences
    ) -> None: ...


# --- sweeps and reconciliation (docs/money-out.md, "Sweeps") --------------------------------------


class StaleSweep(Exception):
    """The sweep moved on since it was read (another leader): read it again."""


@dataclass(frozen=True)
class SweepCandidate:
    """A deposit address whose customer funds in the ledger are not swept yet (the chain is
    asked before sweeping)."""

    deposit_address: str
    derivation_index: int
    invoice_id: str
    merchant_id: str
    held: int  # the ledger's customer funds on the address, micro-USDT


class SweepStore(Protocol):
    """Sweeps with the ledger they move (app/adapters/postgres/sweeps.py)."""

    async def candidates(
        self,
        min_amount: int,
        limit: int,
        retry_failed_after: timedelta,
        exclude: Sequence[str] = (),
    ) -> builtins.list[SweepCandidate]:
        """Addresses holding at least ``min_amount`` of customer funds per the ledger (settled,
        not swept), none open, none failed within ``retry_failed_after``, none in ``exclude``;
        the oldest first."""
        ...

    async def backlog(self, min_amount: int) -> tuple[int, int]:
        """(addresses, micro-USDT) of customer funds not swept, at or above ``min_amount``."""
        ...

    async def create(self, sweep: Sweep) -> bool:
        """Record a new sweep; False when the address has an open one already."""
        ...

    async def open_sweeps(self, limit: int) -> builtins.list[Sweep]: ...

    async def save(self, before: Sweep, step: SweepStep) -> None:
        """Store ``step`` (its movement and receipt too) if the row is still as ``before``
        read it, else ``StaleSweep``."""
        ...

    async def mark_request_sent(self, sweep: Sweep, at: datetime) -> None: ...

    async def request_sent_at(self, sweep_id: str) -> datetime | None: ...

    async def answer(self, request_id: str) -> SigningAnswerRow | None: ...

    async def pending_payouts(self) -> int:
        """Micro-USDT of refunds and payouts not yet sent (requested, approved, signing)."""
        ...


@dataclass(frozen=True)
class DepositPosition:
    """What the books say of one deposit address."""

    address: str
    invoice_id: str
    merchant_id: str
    held: int  # the ledger's customer funds on it (settled, less confirmed sweeps), micro-USDT
    swept: int  # what confirmed sweeps took from it
    received: int | None  # the invoice's amount_received (None: not projected yet)
    trx: int  # TRX held per the ledger's deposit:<address> account, sun


@dataclass(frozen=True)
class TransferRow:
    """A transfer broadcast and not yet booked, as stored."""

    kind: str  # payout, refund, sweep_topup, sweep
    reference: str
    txid: str | None
    source: str
    destination: str
    currency: str
    amount: int
    fee_limit: int  # sun; 0 when the transfer does not say (a TRX transfer)


class LedgerPositions(Protocol):
    """The ledger's side of a reconciliation (app/adapters/postgres/reconcile.py)."""

    async def hot_wallet(self) -> tuple[int, int]:
        """(micro-USDT, sun) the ledger says the hot wallet holds."""
        ...

    async def deposits(self, everything: bool) -> builtins.list[DepositPosition]:
        """Addresses with customer funds or TRX in the books, or a sweep open (``everything``:
        every address the ledger ever held customer funds on)."""
        ...

    async def in_flight(self) -> builtins.list[TransferRow]: ...

    async def record_funding(self, usdt: int, trx_sun: int, reference: str) -> bool:
        """Book the owner's funding of the hot wallet once per reference: True if booked now,
        False if that reference was booked before with the same amounts (``AlreadyExists``
        with other amounts)."""
        ...


# --- notices to merchant users (docs/notifications.md) -------------------------------------------


@dataclass(frozen=True)
class ClaimedNotice:
    """A due notice leased to this worker, with where it goes now (None: nowhere any more)."""

    message: NoticeMessage
    attempt: int  # this attempt's number, from 1
    address: str | None
    merchant_name: str


@dataclass(frozen=True)
class ChatUser:
    """The merchant user a Telegram chat is linked to."""

    user_id: str
    merchant_id: str
    role: Role
    chat_id: int


class NoticeStore(Protocol):
    async def recipients(self, merchant_id: str) -> builtins.list[Recipient]: ...

    async def merchants_wanting(self, notice: Notice) -> builtins.list[str]: ...

    async def enqueue(self, messages: Sequence[NoticeMessage]) -> builtins.list[str]:
        """Queue each notice once; the ids of those that were new."""
        ...

    async def claim_due(self, limit: int, lease_seconds: float) -> builtins.list[ClaimedNotice]: ...

    async def finish(
        self,
        notice_id: str,
        status: str,
        *,
        sent_to: str | None = None,
        provider_id: str | None = None,
        error: str | None = None,
    ) -> None: ...

    async def retry_later(self, notice_id: str, delay_seconds: float, error: str) -> None: ...

    async def deliveries(self, user_id: str, limit: int = 50) -> builtins.list[dict[str, Any]]: ...

    async def add_link_token(
        self, token: str, user_id: str, merchant_id: str, expires_at: datetime
    ) -> None: ...

    async def redeem_link_token(
        self, token: str, chat_id: int, username: str | None
    ) -> ChatUser | None: ...

    async def chat_user(self, chat_id: int) -> ChatUser | None: ...

    async def telegram_chat(self, user_id: str) -> dict[str, Any] | None: ...

    async def unlink_chat(self, user_id: str) -> bool: ...
