"""The one place that wires: settings, resources, services and the Faust app.

``build(settings)`` makes a worker's whole platform — nothing is built by importing a module:

1. the Faust patches (app/runtime/patches.py) and the Faust app;
2. ``Resources``: the worker's one PostgreSQL pool, one Redis client, one Kafka admin client and
   one Tron node client, each opened when the worker starts and closed when it stops, as a pair;
3. the topics and the tables (tables/), then the ports — the adapters over those resources and
   the Kafka publisher — and from them the services (``build_services``);
4. the agents and timers (agents/), each given its service; the HTTP views (web/), each given
   the services it calls; the background services (webhook dispatcher, stall watchdog).

The tests build the services with in-memory ports (``build_services`` with
tests/support/fakes.py) and the agents' handlers and views around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

import faust
import psycopg2
import redis.asyncio as aioredis
from aiohttp import web as aioweb
from aiokafka.admin import AIOKafkaAdminClient
from faust.sensors.prometheus import PrometheusMonitor
from mode import Service
from prometheus_client import REGISTRY

from agents import (
    analytics,
    chain_watcher,
    event_partitions,
    expiry,
    invoices,
    live_status,
    money_out,
    notices,
    payments,
    payout_schedule,
    projections,
    resolutions,
    settlements,
    stall_watchdog,
    sweeps,
    webhook_dispatcher,
    webhooks,
)
from app.adapters.auth.passwords import Argon2Passwords
from app.adapters.auth.tokens import TokenIssuer
from app.adapters.email.smtp import smtp_mailer
from app.adapters.logs import json_logging_config
from app.adapters.postgres.api_keys import PostgresApiKeys
from app.adapters.postgres.audit_log import PostgresAuditLog
from app.adapters.postgres.chain_cursor import PostgresWatcherStore
from app.adapters.postgres.chain_progress import PostgresChainProgress
from app.adapters.postgres.deposit_addresses import (
    DepositAddressAllocator,
    PostgresDepositAddressFilter,
)
from app.adapters.postgres.event_partitions import PostgresEventStoreMonths
from app.adapters.postgres.exports import PostgresExports
from app.adapters.postgres.idempotency import PostgresIdempotencyKeys
from app.adapters.postgres.ledger import PostgresLedger
from app.adapters.postgres.merchants import PostgresMerchantAccounts
from app.adapters.postgres.money_out import PostgresMoneyOut
from app.adapters.postgres.notices import PostgresNotices
from app.adapters.postgres.notification_preferences import PostgresNotificationPreferences
from app.adapters.postgres.payout_schedules import PostgresPayoutSchedules
from app.adapters.postgres.pool import Database
from app.adapters.postgres.projections import EventProjections, InvoiceSummaries
from app.adapters.postgres.reports import PostgresReports
from app.adapters.postgres.settlements import SettlementRecords
from app.adapters.postgres.signup import PostgresSignups
from app.adapters.postgres.sweeps import PostgresSweeps
from app.adapters.postgres.users import PostgresUsers
from app.adapters.postgres.webhook_store import PostgresWebhookStore
from app.adapters.readiness import PROBE_TIMEOUT_SECONDS, Probe
from app.adapters.redis.access_changes import RedisAccessChanges
from app.adapters.redis.live_views import LiveInvoiceViews
from app.adapters.redis.rate_limits import RateLimiter
from app.adapters.redis.replies import CommandReplies
from app.adapters.sms.twilio import sms_sender
from app.adapters.telemetry import configure_tracing
from app.adapters.tron.money_out_node import NodeSending
from app.adapters.tron.node import TronNode
from app.adapters.tron.sweep_node import SweepSending
from app.adapters.tron.watcher import ChainWatcher
from app.adapters.webhooks.config import dispatch_settings, keyring, url_policy
from app.adapters.webhooks.dispatcher import WebhookDelivery
from app.adapters.webhooks.replays import ReplayQueue
from app.domain.webhooks import WebhookEndpoint
from app.runtime import notice_loops, patches
from app.runtime.background import Background
from app.runtime.commands import AskInvoiceAgent
from app.runtime.dead_letters import DeadLetters
from app.runtime.publishing import KafkaPublisher
from app.runtime.routing import OwnerRouting, Routing
from app.runtime.shutdown import ShutdownHold
from app.runtime.stall import StallWatchdog
from app.runtime.stream_metrics import faust_metrics
from app.runtime.topic_admin import TopicRequirement, ensure_topics
from app.runtime.topics import (
    DEPOSITS,
    DOMAIN_EVENTS,
    INVOICE_COMMANDS,
    NOTIFICATIONS,
    SIGNATURES,
    Topics,
)
from app.runtime.web_server import InternalListener, harden_public_server
from app.runtime.worker import WorkerState
from app.runtime.worker_signatures import WorkerSignatures
from app.services.access import AccessControl, ApiKeys
from app.services.admin import PlatformAdmin
from app.services.analytics import AnalyticsPublication
from app.services.create_invoice import InvoiceCreation
from app.services.credentials import SecretDigests
from app.services.deposits import DepositProcessing
from app.services.event_store_upkeep import EventStoreUpkeep
from app.services.expiry import ExpirySweep
from app.services.invoice_commands import InvoiceCommands
from app.services.merchant_invoices import MerchantInvoices
from app.services.money_out import MoneyOutRequests, MoneyOutSettings
from app.services.money_out_driver import DriverSettings, MoneyOutDriver
from app.services.notices import (
    DailySummaries,
    NoticeDispatch,
    NoticeFanout,
    NoticeIntake,
    NoticeSender,
    TelegramLinks,
)
from app.services.notification_preferences import NotificationPreferencesService
from app.services.payout_schedule import PayoutSchedules
from app.services.ports import (
    AccessChanges,
    AccessTokens,
    AddressAllocator,
    AnalyticsReads,
    ApiKeyStore,
    AuditLog,
    ChainProgress,
    DeliveryDispatcher,
    ExportReads,
    IdempotencyKeys,
    InvoiceCommandGateway,
    InvoiceSummaryReads,
    Ledger,
    LiveViews,
    Mailer,
    MerchantAccounts,
    MoneyOutStore,
    NoticeStore,
    NotificationPreferenceStore,
    PasswordHashing,
    PayoutScheduleStore,
    ProjectionStore,
    Publisher,
    ReportReads,
    SettlementReads,
    SignupStore,
    UserStore,
    WebhookStore,
)
from app.services.projection import Projection
from app.services.rate_limits import Limiter
from app.services.resolutions import Resolutions
from app.services.settlement import Settling
from app.services.signup import Signup, SignupSettings
from app.services.sweeps import Sweeper, SweepSettings
from app.services.users import LoginLimits, UserAccounts
from app.services.webhook_endpoints import WebhookEndpoints, WebhookQuotas
from app.services.webhook_fanout import DeliveryIntake, WebhookFanout
from app.services.webhook_subscribers import CachedSubscriptions
from app.settings import Settings
from tables import Tables, declare_tables
from web import MIDDLEWARES, openapi
from web.access_api import AccessApi
from web.audit import AuditTrail
from web.auth import Authenticator
from web.dashboard import Dashboard, LoopbackApi
from web.edge import ClientAddresses, EdgeGuard, client_address
from web.exports_api import ExportsApi
from web.health import Check, Health
from web.input import MAX_BODY_BYTES, read_capped
from web.invoice_list import InvoiceListApi
from web.merchant_api import MerchantApi
from web.money_out_api import MoneyOutApi
from web.notifications_api import NotificationsApi
from web.owner_invoices import OwnerInvoices
from web.presenters import explorer_base
from web.public import LiveStreamSettings, PublicEndpoints
from web.rate_limits import RateTiers, RequestLimits
from web.reports_api import ReportsApi
from web.signup_api import SignupApi
from web.view_fallback import ViewFallback
from web.webhooks_api import WebhookApi

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.types import Update

    from app.adapters.telegram.client import BotPushes

logger = logging.getLogger(__name__)


# --- resources --------------------------------------------------------------------------------


class Resources(Service):
    """Owns the worker's connections to PostgreSQL, Redis, Kafka and the Tron node.

    Added to the Faust app as its first dependency, so they open before any agent starts and
    close after the agents stop. The clients that need no event loop to exist are made here, the
    others when the worker starts.
    """

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.db = Database(
            settings.database_url,
            maxsize=settings.database_pool_max,
            timeout=PROBE_TIMEOUT_SECONDS * 5,
        )
        self.redis = aioredis.from_url(
            settings.redis_url,
            socket_connect_timeout=PROBE_TIMEOUT_SECONDS,
            socket_timeout=PROBE_TIMEOUT_SECONDS * 5,
            health_check_interval=30,
        )
        self.tron_node = TronNode.from_settings(settings.chain)
        self.replies = CommandReplies(self.redis)
        self._kafka_admin: AIOKafkaAdminClient | None = None
        self._reply_listener: asyncio.Task[None] | None = None
        self._startup_hooks: list[Callable[[Resources], Awaitable[object]]] = []

    def on_ready(self, hook: Callable[[Resources], Awaitable[object]]) -> None:
        """Run ``hook`` once the clients are open, before the agents start."""
        self._startup_hooks.append(hook)

    @property
    def kafka_admin(self) -> AIOKafkaAdminClient:
        if self._kafka_admin is None:
            raise RuntimeError("the Kafka admin client is used before the worker started")
        return self._kafka_admin

    def probes(self) -> dict[str, Probe]:
        """What ``/readyz`` asks: can this worker reach each of its dependencies now?"""

        async def kafka() -> None:
            cluster = await self.kafka_admin.describe_cluster()
            if not cluster["brokers"]:
                raise ConnectionError("the cluster metadata lists no broker")

        async def redis() -> None:
            await self.redis.ping()

        return {"kafka": kafka, "postgres": self.db.ping, "redis": redis}

    async def on_start(self) -> None:
        await self.db.open()
        self._kafka_admin = AIOKafkaAdminClient(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id=f"{self.settings.app_id}-admin",
            request_timeout_ms=int(PROBE_TIMEOUT_SECONDS * 1000),
        )
        await self._kafka_admin.start()
        self._reply_listener = asyncio.create_task(self.replies.listen(), name="reply-listener")
        for hook in self._startup_hooks:
            await hook(self)

    async def on_stop(self) -> None:
        # The reply listener first: it must not read from the Redis client closed below.
        if self._reply_listener is not None:
            self._reply_listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reply_listener
            self._reply_listener = None
        await self.tron_node.aclose()
        if self._kafka_admin is not None:
            await self._kafka_admin.close()
            self._kafka_admin = None
        await self.redis.aclose()
        await self.db.close()


# --- services ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ports:
    """Everything the use cases reach the world through (app/services/ports.py)."""

    tables: Tables
    publisher: Publisher
    invoice_gateway: InvoiceCommandGateway
    ledger: Ledger
    idempotency: IdempotencyKeys
    addresses: AddressAllocator
    projections: ProjectionStore
    invoice_summaries: InvoiceSummaryReads
    reports: ReportReads
    analytics: AnalyticsReads
    exports: ExportReads
    settlement_records: SettlementReads
    webhook_store: WebhookStore
    dispatcher: DeliveryDispatcher
    replay_queue: DeliveryDispatcher  # wake() when a replay is asked for
    live_views: LiveViews
    # Access (docs/security.md)
    api_keys: ApiKeyStore
    users: UserStore
    merchant_accounts: MerchantAccounts
    audit_log: AuditLog
    access_changes: AccessChanges
    limiter: Limiter
    passwords: PasswordHashing
    tokens: AccessTokens
    signups: SignupStore
    mailer: Mailer
    # Money out (docs/money-out.md)
    money_out: MoneyOutStore
    payout_schedules: PayoutScheduleStore
    # Notifications (docs/notifications.md)
    notification_preferences: NotificationPreferenceStore
    notices: NoticeStore
    notice_dispatcher: DeliveryDispatcher  # wake() when notices are queued
    chain_progress: ChainProgress


@dataclass(frozen=True)
class Services:
    ports: Ports
    invoice_commands: InvoiceCommands
    invoice_creation: InvoiceCreation
    merchant_invoices: MerchantInvoices
    deposits: DepositProcessing
    settling: Settling
    projection: Projection
    webhook_fanout: WebhookFanout
    webhook_subscriptions: CachedSubscriptions
    delivery_intake: DeliveryIntake
    webhook_endpoints: WebhookEndpoints
    expiry: ExpirySweep
    access: AccessControl
    api_keys: ApiKeys
    users: UserAccounts
    admin: PlatformAdmin
    signup: Signup
    money_out: MoneyOutRequests
    resolutions: Resolutions
    payout_schedules: PayoutSchedules
    notification_preferences: NotificationPreferencesService
    notice_fanout: NoticeFanout
    notice_intake: NoticeIntake
    telegram_links: TelegramLinks


def signup_settings(settings: Settings) -> SignupSettings:
    return SignupSettings(
        mode=settings.signup_mode,
        public_url=settings.public_url,
        per_address=settings.signups_per_ip,
    )


def money_out_settings(settings: Settings) -> MoneyOutSettings:
    return MoneyOutSettings(
        hot_wallet_address=settings.chain.hot_wallet_address or "",
        network_fee_payer=settings.network_fee_payer,
        network_fee_charge=settings.network_fee_charge,
        payout_approval_threshold=settings.payout_approval_threshold,
    )


def driver_settings(settings: Settings) -> DriverSettings:
    return DriverSettings(
        hot_wallet_address=settings.chain.hot_wallet_address or "",
        token_contract=settings.chain.usdt_contract,
        fee_limit_sun=settings.money_out_fee_limit,
        batch_size=settings.payout_batch_size,
        batch_seconds=settings.payout_batch_seconds,
    )


def sweep_settings(settings: Settings) -> SweepSettings:
    return SweepSettings(
        hot_wallet_address=settings.chain.hot_wallet_address or "",
        token_contract=settings.chain.usdt_contract,
        min_amount=settings.sweep_min_usdt,
        batch_size=settings.sweep_batch_size,
    )


def build_services(ports: Ports, settings: Settings) -> Services:
    tables, publisher = ports.tables, ports.publisher
    digests = SecretDigests(settings.api_key_pepper)
    access = AccessControl(
        ports.api_keys,
        ports.users,
        ports.merchant_accounts,
        ports.tokens,
        digests,
        ports.access_changes,
    )
    # Each merchant's endpoints cached per worker, dropped on news of a change (every worker).
    subscriptions = CachedSubscriptions(ports.webhook_store, ports.access_changes)
    merchant_invoices = MerchantInvoices(tables.invoices, tables.settlements, ports.invoice_gateway)
    money_out_requests = MoneyOutRequests(ports.money_out, money_out_settings(settings))
    return Services(
        ports=ports,
        invoice_commands=InvoiceCommands(
            tables.invoices,
            tables.open_invoices,
            publisher,
            publisher,
            late_payment_window=timedelta(seconds=settings.late_payment_window),
        ),
        invoice_creation=InvoiceCreation(ports.idempotency, ports.addresses, ports.invoice_gateway),
        merchant_invoices=merchant_invoices,
        deposits=DepositProcessing(
            tables.deposits,
            tables.confirmation_watch,
            publisher,
            publisher,
            ports.chain_progress,
        ),
        settling=Settling(tables.settlements, ports.ledger, publisher),
        projection=Projection(ports.projections),
        webhook_fanout=WebhookFanout(
            subscriptions, publisher, endpoints_changed=subscriptions.changed
        ),
        webhook_subscriptions=subscriptions,
        delivery_intake=DeliveryIntake(ports.webhook_store, ports.dispatcher),
        webhook_endpoints=WebhookEndpoints(
            ports.webhook_store,
            publisher,
            ports.dispatcher,
            replays=ports.replay_queue,
            limiter=ports.limiter,
            endpoints_changed=subscriptions.changed,
            quotas=WebhookQuotas(
                replay=settings.webhook_replay_quota,
                redeliver=settings.webhook_redeliver_quota,
                test=settings.webhook_test_quota,
            ),
        ),
        expiry=ExpirySweep(
            tables.open_invoices,
            tables.invoices,
            publisher,
            ports.chain_progress,
            grace=timedelta(seconds=settings.expiry_grace),
        ),
        access=access,
        api_keys=ApiKeys(ports.api_keys, digests, access),
        users=UserAccounts(
            ports.users,
            ports.merchant_accounts,
            ports.passwords,
            ports.tokens,
            digests,
            access,
            ports.limiter,
            LoginLimits(settings.login_failures_per_account, settings.login_failures_per_ip),
        ),
        admin=PlatformAdmin(ports.merchant_accounts, access),
        signup=Signup(
            ports.signups,
            ports.users,
            ports.passwords,
            digests,
            ports.mailer,
            ports.limiter,
            signup_settings(settings),
            access,
        ),
        money_out=money_out_requests,
        resolutions=Resolutions(
            merchant_invoices,
            ports.invoice_gateway,
            ports.money_out,
            money_out_requests,
        ),
        payout_schedules=PayoutSchedules(
            ports.payout_schedules,
            money_out_requests,
            ports.money_out,
            ports.reports,
        ),
        notification_preferences=NotificationPreferencesService(ports.notification_preferences),
        notice_fanout=NoticeFanout(
            ports.notices, publisher, sms_enabled=settings.sms_provider != "none"
        ),
        notice_intake=NoticeIntake(ports.notices, ports.notice_dispatcher.wake),
        telegram_links=TelegramLinks(
            ports.notices, ports.audit_log, bot_username=settings.telegram_bot_username
        ),
    )


# --- the platform -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    settings: Settings
    app: faust.App
    resources: Resources
    topics: Topics
    services: Services
    web: aioweb.Application


class _RoutesOwner(Protocol):
    def add_routes(self, router: aioweb.UrlDispatcher) -> None: ...


def faust_app(settings: Settings) -> faust.App:
    # Faust creates only the last level of its data folder; make the parents.
    settings.worker_data_dir.parent.mkdir(parents=True, exist_ok=True)
    return faust.App(
        settings.app_id,
        broker=settings.kafka_broker,
        store=settings.store,
        datadir=str(settings.worker_data_dir),
        # Everything is registered explicitly by ``build``: importing a module registers nothing.
        autodiscover=False,
        web_host=settings.web_host,
        web_bind=settings.web_bind,
        web_port=settings.web_port,
        canonical_url=settings.canonical_url,
        # Payment data must never be readable through Faust's generic table endpoints, nor the
        # cluster's layout through /router (docs/security.md).
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_router_enabled=False,
        topic_partitions=12,
        topic_replication_factor=settings.kafka_replication_factor,
        # Failover after kill -9 in about the session timeout (docs/reliability.md).
        broker_session_timeout=settings.kafka_session_timeout,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval,
        consumer_auto_offset_reset="earliest",
        # acks=all: an event the platform acted on is on every in-sync replica before we go on.
        producer_acks=-1,
        value_serializer="json",
        # app/runtime/producer_flush.py patches the in-process producer buffer.
        producer_threaded=False,
        # LOG_FORMAT=json: the worker's root handler writes JSON lines (app/adapters/logs.py).
        logging_config=json_logging_config() if settings.log_format == "json" else None,
    )


def build(settings: Settings) -> Platform:
    """The whole platform of one worker, ready for ``app.main()``."""
    patches.install()  # before any worker commits
    # Spans exported only when the OTEL_* variables ask for it (docs/operations.md).
    configure_tracing(instance_id=settings.canonical_url)
    # httpx logs every request to the Tron node at INFO: one line per block is noise, not news.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = faust_app(settings)
    # faust.web has no WebSocket support: our routes go on the aiohttp app Faust runs, with a
    # header read timeout and the body limit (app/runtime/web_server.py).
    web_app = harden_public_server(app, max_body_bytes=MAX_BODY_BYTES)
    signatures = WorkerSignatures(settings.internal_secret)
    resources = Resources(settings)
    app.add_dependency(resources)  # first: open before any agent starts, closed after
    # Faust's own stream metrics, beside ours in prometheus_client's default registry; served
    # on the operators' listener only (``_register_web``).
    app.monitor = PrometheusMonitor(metrics=faust_metrics(REGISTRY))

    topics = Topics(app, settings.topic_namespace)
    tables = declare_tables(app)
    hold = ShutdownHold(app)
    dead_letters = DeadLetters(topics.dead_letter_of, hold)
    publisher = KafkaPublisher(topics)
    webhook_store = PostgresWebhookStore(resources.db, keyring(settings), settings.app_id)
    reports = webhook_dispatcher.DispatcherReports(
        dead_letters, publisher, topics.cluster_name(NOTIFICATIONS)
    )

    async def endpoint_disabled(endpoint: WebhookEndpoint) -> None:
        # Every worker's cached subscribers forget it now (its event, fanned out later, again).
        await services.webhook_subscriptions.changed(endpoint.merchant_id)
        await reports.endpoint_disabled(endpoint)

    delivery = WebhookDelivery(
        webhook_store,
        dispatch_settings(settings),
        on_dead_letter=reports.dead_letter,
        on_disabled=endpoint_disabled,
    )
    app.add_dependency(
        Background("webhook-dispatcher", start=delivery.start, run=delivery.run, stop=delivery.stop)
    )
    replays = ReplayQueue(webhook_store, publisher.publish_notifications, delivery.wake)
    app.add_dependency(Background("webhook-replays", run=replays.run))

    # Notices to merchant users (docs/notifications.md): each worker sends what is queued.
    notice_store = PostgresNotices(resources.db, settings.app_id)
    mailer = smtp_mailer(settings)
    bot, bot_pushes = _telegram_client(settings)
    sms = sms_sender(
        settings.sms_provider,
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token,
        from_number=settings.sms_from,
        base_url=settings.twilio_base_url,
    )
    notice_dispatch = NoticeDispatch(
        notice_store,
        NoticeSender(
            mailer,
            bot_pushes,
            sms,
            public_url=settings.public_url,
            support_email=settings.mail_reply_to,
        ),
        on_given_up=notice_loops.dead_letter_notice(
            dead_letters, topics.cluster_name(NOTIFICATIONS)
        ),
    )
    notice_loop = notice_loops.NoticeDispatcherLoop(
        notice_dispatch, poll_interval=settings.notice_poll_interval
    )

    async def close_notice_channels() -> None:
        await sms.close()
        if bot is not None:
            await bot.session.close()

    app.add_dependency(
        Background("notice-dispatcher", run=notice_loop.run, stop=close_notice_channels)
    )
    api_keys = PostgresApiKeys(resources.db, SecretDigests(settings.api_key_pepper))
    access_changes = RedisAccessChanges(
        resources.redis, channel=f"checkout:{settings.app_id}:access-changes"
    )
    read_models = PostgresReports(resources.db)
    ports = Ports(
        tables=tables,
        publisher=publisher,
        invoice_gateway=AskInvoiceAgent(publisher, resources.replies, settings.command_timeout),
        ledger=PostgresLedger(resources.db),
        idempotency=PostgresIdempotencyKeys(resources.db),
        addresses=DepositAddressAllocator(resources.db, settings.chain.xpub),
        projections=EventProjections(resources.db),
        invoice_summaries=InvoiceSummaries(resources.db),
        reports=read_models,
        analytics=read_models,  # the same tables, read for the analytics topic
        exports=PostgresExports(resources.db),
        settlement_records=SettlementRecords(resources.db),
        webhook_store=webhook_store,
        dispatcher=delivery,
        replay_queue=replays,
        live_views=LiveInvoiceViews(resources.redis, token_contract=settings.chain.usdt_contract),
        api_keys=api_keys,
        users=PostgresUsers(resources.db),
        merchant_accounts=PostgresMerchantAccounts(resources.db),
        audit_log=PostgresAuditLog(resources.db),
        access_changes=access_changes,
        # Budgets and news are per platform: several may share one Redis (tests, staging).
        limiter=RateLimiter(resources.redis, prefix=f"checkout:{settings.app_id}:rl:"),
        passwords=Argon2Passwords(),
        tokens=TokenIssuer(
            settings.jwt_secret.encode(),
            access_ttl=timedelta(minutes=settings.access_token_minutes),
        ),
        signups=PostgresSignups(resources.db),
        mailer=mailer,
        money_out=PostgresMoneyOut(resources.db, origin=settings.app_id),
        payout_schedules=PostgresPayoutSchedules(resources.db),
        notification_preferences=PostgresNotificationPreferences(resources.db),
        notices=notice_store,
        notice_dispatcher=notice_loop,
        chain_progress=PostgresChainProgress(
            resources.db, topic=topics.cluster_name(DEPOSITS), partitions=DEPOSITS.partitions
        ),
    )
    services = build_services(ports, settings)

    # What other workers changed is forgotten here at once: credentials (app/services/access.py)
    # and a merchant's webhook subscribers (app/services/webhook_subscribers.py).
    def forget(subject: str) -> None:
        services.access.forget(subject)
        services.webhook_subscriptions.forget(subject)

    access_changes.on_change(forget)
    app.add_dependency(Background("access-changes", run=access_changes.run))

    async def upgrade_api_keys(resources: Resources) -> None:
        # Keys stored as a plain SHA-256 (before migration 0009) get their HMAC now. Not being
        # able to is no reason to stay down: each such key is upgraded on its first use anyway.
        try:
            upgraded = await api_keys.upgrade_legacy_hashes()
        except (psycopg2.Error, OSError, TimeoutError) as exc:
            logger.warning("API keys not upgraded at start (%s); each is on its first use", exc)
            return
        if upgraded:
            logger.info("API keys: %d stored SHA-256 digests now HMAC-SHA256", upgraded)

    resources.on_ready(upgrade_api_keys)
    advisories = _register_agents(
        app, topics, services, resources, publisher, dead_letters, hold, settings
    )
    _register_web(web_app, app, services, resources, settings, signatures, advisories)
    if bot is not None:
        _register_telegram(app, web_app, bot, services, ports, settings)

    async def create_topics(resources: Resources) -> None:
        await ensure_topics(
            resources.kafka_admin, required_topics(app, topics), settings.kafka_replication_factor
        )

    resources.on_ready(create_topics)
    return Platform(settings, app, resources, topics, services, web_app)


def _register_agents(
    app: faust.App,
    topics: Topics,
    services: Services,
    resources: Resources,
    publisher: KafkaPublisher,
    dead_letters: DeadLetters,
    hold: ShutdownHold,
    settings: Settings,
) -> dict[str, Check]:
    events = topics[DOMAIN_EVENTS]
    invoices.register(
        app,
        topics[INVOICE_COMMANDS],
        invoices.InvoiceAgent(services.invoice_commands, dead_letters, resources.replies),
        hold,
    )
    payments.register(
        app, topics[DEPOSITS], payments.PaymentAgent(services.deposits, dead_letters), hold
    )
    settlements.register(
        app, events, settlements.SettlementAgent(services.settling, dead_letters), hold
    )
    resolutions.register(
        app, events, resolutions.ResolutionAgent(services.money_out, dead_letters), hold
    )
    projections.register(
        app, events, projections.ProjectionAgent(services.projection, dead_letters), hold
    )
    live_status.register(
        app, events, live_status.LiveStatusAgent(services.ports.live_views, dead_letters)
    )
    webhooks.register(
        app,
        events,
        topics[NOTIFICATIONS],
        webhooks.WebhookAgents(services.webhook_fanout, services.delivery_intake, dead_letters),
        hold,
    )
    notices.register(
        app,
        events,
        topics[NOTIFICATIONS],
        notices.NoticeAgents(services.notice_fanout, services.notice_intake, dead_letters),
        hold,
        notice_loops.DailySummaryClock(
            DailySummaries(services.ports.notices, services.ports.reports, services.notice_fanout),
            settings.daily_summary_hour,
        ),
    )
    expiry.register(app, services.expiry, services.ports.chain_progress)
    analytics.register(
        app,
        AnalyticsPublication(
            services.ports.analytics, publisher, interval=settings.analytics_interval
        ),
        settings.analytics_interval,
    )

    chain = settings.chain

    def make_watcher() -> ChainWatcher:
        return ChainWatcher.from_settings(
            chain,
            node=resources.tron_node,
            # Its starts are judged and recorded per platform and network (docs/chain.md).
            store=PostgresWatcherStore(
                resources.db, chain.watcher_name, app_id=settings.app_id, network=chain.network
            ),
            publish=publisher.publish_observations,
            deposit_addresses=PostgresDepositAddressFilter(resources.db),
        )

    watching = chain_watcher.ChainWatching(make_watcher, chain.poll_interval)
    chain_watcher.register(app, watching, chain.poll_interval)
    money_out_store = services.ports.money_out
    if chain.hot_wallet_address is not None:
        # Without a hot wallet there is nothing to pay from: refunds and payouts are refused
        # (app/services/money_out.py) and nothing drives them.
        money_out.register(
            app,
            MoneyOutDriver(
                money_out_store,
                NodeSending(resources.tron_node),
                publisher,
                publisher,
                driver_settings(settings),
            ),
            topics[SIGNATURES],
            money_out.SigningAnswers(money_out_store, dead_letters),
            hold,
            settings.money_out_interval,
        )
        payout_schedule.register(app, services.payout_schedules, settings.payout_schedule_interval)
        # Sweeps refill the hot wallet from settled deposit addresses (docs/money-out.md).
        sweeps.register(
            app,
            Sweeper(
                PostgresSweeps(resources.db),
                SweepSending(resources.tron_node),
                publisher,
                sweep_settings(settings),
            ),
            settings.sweep_interval,
        )
    # The event store's monthly partitions, made ahead (docs/operations.md).
    event_partitions.register(
        app,
        EventStoreUpkeep(PostgresEventStoreMonths(resources.db), settings.event_store_months_ahead),
        settings.event_store_upkeep_interval,
    )
    watched = (INVOICE_COMMANDS, DEPOSITS, DOMAIN_EVENTS, NOTIFICATIONS)
    watchdog = StallWatchdog(
        app,
        {topics.cluster_name(spec) for spec in watched},
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.app_id}-stall-watchdog",
    )
    stall_watchdog.register(app, watchdog)
    app.add_dependency(Background("stall-watchdog", stop=watchdog.close))
    # Their health is reported on the operators' /readyz (``_register_web``).
    return {"stall_watchdog": watchdog.readiness, "chain_watcher": watching.readiness}


def _register_web(
    web_app: aioweb.Application,
    app: faust.App,
    services: Services,
    resources: Resources,
    settings: Settings,
    signatures: WorkerSignatures,
    advisories: dict[str, Check],
) -> None:
    limits = install_edge(web_app, services, settings, signatures)
    # The stall watchdog and the chain watcher only as advisories: a blind watchdog or a watcher
    # refusing to start never takes the worker out (web/health.py, agents/chain_watcher.py).
    health = Health(resources.probes(), WorkerState(app).partitions_check, advisories=advisories)
    health.add_routes(web_app.router)
    routing = OwnerRouting(app, signatures, read_body=read_capped, client_address=client_address)
    install_views(web_app, services, routing, settings, limits=limits)
    openapi.add_routes(web_app.router)
    # /metrics and the detailed /readyz: never on the public port.
    operators = aioweb.Application()
    health.add_internal_routes(operators.router)
    listener = InternalListener(
        operators, host=settings.internal_bind, port=settings.internal_listener_port
    )
    app.add_dependency(Background("internal-listener", start=listener.start, stop=listener.stop))


def _telegram_client(settings: Settings) -> tuple[Bot | None, BotPushes | None]:
    """The Bot API client and the notice pushes through it, when the bot is on.

    aiogram is imported here, not at the top: it builds several hundred pydantic models when
    imported, about half of what a worker or an operator command took to start without a bot.
    """
    if settings.telegram_mode == "off" or settings.telegram_bot_token is None:
        return None, None
    from app.adapters.telegram.client import BotPushes, telegram_bot

    bot = telegram_bot(settings.telegram_bot_token, settings.telegram_api_url)
    return bot, BotPushes(bot)


def _register_telegram(
    app: faust.App,
    web_app: aioweb.Application,
    bot: Bot,
    services: Services,
    ports: Ports,
    settings: Settings,
) -> None:
    """The merchants' bot: long polling on the leader, or Telegram's posts to every worker."""
    from app.adapters.telegram.client import LongPolling
    from web.telegram_bot import WEBHOOK_PATH, MerchantBot, TelegramWebhook

    merchant_bot = MerchantBot(
        links=services.telegram_links,
        access=services.access,
        creation=services.invoice_creation,
        invoices=ports.invoice_summaries,
        reports=ports.reports,
        money_out=ports.money_out,
        settings=settings,
        limiter=ports.limiter,
    )

    async def handle(update: Update) -> None:
        await merchant_bot.feed(bot, update)

    async def announce_commands() -> None:
        try:
            await merchant_bot.announce_commands(bot)
        except Exception as exc:  # the commands still work; clients only do not list them
            logger.warning("Telegram setMyCommands failed: %s", exc)

    app.add_dependency(Background("telegram-commands", start=announce_commands))
    if settings.telegram_mode == "polling":
        notices.register_polling(app, LongPolling(bot, handle).poll_once)
        return
    assert settings.telegram_webhook_secret is not None  # checked by Settings
    TelegramWebhook(bot, merchant_bot, settings.telegram_webhook_secret).add_routes(web_app.router)
    url = f"{settings.public_url.rstrip('/')}{WEBHOOK_PATH}"

    async def set_webhook() -> None:
        # Every worker says the same at start; Telegram keeps one webhook per bot.
        try:
            await bot.set_webhook(
                url, secret_token=settings.telegram_webhook_secret, drop_pending_updates=False
            )
        except Exception as exc:  # the bot waits; payments and notices by email do not
            logger.warning("Telegram setWebhook(%s) failed: %s; the bot gets no updates", url, exc)

    app.add_dependency(Background("telegram-webhook", start=set_webhook))


def install_edge(
    web_app: aioweb.Application,
    services: Services,
    settings: Settings,
    signatures: WorkerSignatures,
) -> RequestLimits:
    """The middlewares every request passes, outermost first: the audit log (it sees the answer
    as sent), the one error shape, the input guard (web/input.py), the edge (who the client is,
    whether a worker sent it: web/edge.py), the global and per-address rate limits."""
    edge = EdgeGuard(signatures, ClientAddresses(settings.trusted_proxies))
    limits = RequestLimits(
        services.ports.limiter,
        RateTiers(
            invoice_create=settings.rate_limit_invoice_create,
            reads=settings.rate_limit_reads,
            ip=settings.rate_limit_ip,
            global_=settings.rate_limit_global,
        ),
    )
    audit = AuditTrail(services.ports.audit_log)
    web_app.middlewares.extend((audit.middleware, *MIDDLEWARES, edge.middleware, limits.middleware))
    limits.install(web_app)
    audit.install(web_app)
    return limits


def install_views(
    web_app: aioweb.Application,
    services: Services,
    routing: Routing,
    settings: Settings,
    *,
    live: LiveStreamSettings | None = None,
    limits: RequestLimits | None = None,
) -> None:
    """The merchant and customer views on ``web_app``, given the services they call."""
    ports = services.ports
    auth = Authenticator(services.access, limits)
    fallback = ViewFallback(
        ports.tables.invoices,
        routing,
        table=ports.tables.invoices.name,
        token_contract=settings.chain.usdt_contract,
    )
    owner_invoices = OwnerInvoices(ports.tables.invoices, routing, table=ports.tables.invoices.name)
    if isinstance(ports.invoice_gateway, AskInvoiceAgent):  # tests may answer in process
        ports.invoice_gateway.find_created_with(owner_invoices)
    live = live or LiveStreamSettings(
        per_worker=settings.live_connections_per_worker,
        per_address=settings.live_connections_per_ip,
    )
    public = PublicEndpoints(
        ports.live_views,
        fallback=fallback,
        settings=live,
        explorer=explorer_base(settings.chain.network),
    )
    loopback = LoopbackApi(WorkerSignatures(settings.internal_secret))
    web_app.on_cleanup.append(loopback.close)
    dashboard = Dashboard(
        loopback,
        ports.live_views,
        public.connections,
        secure_cookies=settings.environment == "production",
        network=settings.chain.network,
        signup_mode=settings.signup_mode,
    )
    views: list[_RoutesOwner] = [
        MerchantApi(
            auth,
            services.invoice_creation,
            services.merchant_invoices,
            services.resolutions,
            ports.settlement_records,
            routing,
            settings=settings,
            invoice_table=ports.tables.invoices.name,
            settlement_table=ports.tables.settlements.name,
        ),
        InvoiceListApi(auth, ports.invoice_summaries),
        ReportsApi(auth, ports.reports),
        ExportsApi(auth, ports.exports),
        WebhookApi(auth, services.webhook_endpoints, url_policy=url_policy(settings)),
        AccessApi(auth, services.api_keys, services.users, services.admin, ports.audit_log),
        SignupApi(services.signup),
        MoneyOutApi(auth, services.money_out, ports.money_out, services.payout_schedules),
        NotificationsApi(
            auth, services.notification_preferences, services.telegram_links, ports.notices
        ),
        public,
        fallback,
        owner_invoices,
        dashboard,
    ]
    for view in views:
        view.add_routes(web_app.router)
    # On shutdown, every WebSocket and SSE stream ends at once (1001: reconnect elsewhere).
    web_app.on_shutdown.append(public.close_live_streams)


def required_topics(app: faust.App, topics: Topics) -> list[TopicRequirement]:
    """Our topics, the tables' changelogs and Faust's leader topic, as they must exist before
    any consumer starts."""
    required = topics.requirements()
    # Faust creates its leader topic itself, as its consumer starts: the first assignment could
    # then run on metadata without it ("Ignoring missing topic"), leave no worker the leader, and
    # so no chain watcher, until the metadata was refreshed minutes later. Seen in CI.
    required.append(TopicRequirement(f"{app.conf.id}-__assignor-__leader", 1, {}))
    for table in app.tables.values():
        required.append(
            TopicRequirement(
                table.changelog_topic.get_topic_name(),
                table.partitions or app.conf.topic_partitions,
                {"cleanup.policy": "compact"},
            )
        )
    return required
