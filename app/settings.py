"""Settings of a crypto-checkout worker, read once from the environment and frozen.

Every variable is validated when the worker starts; a bad one stops it with a message that names
the variable and says what is expected, never a traceback from deep inside a client library.
The variables and their defaults are listed in README.md ("Configuration").
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Final, Literal, TypeVar, cast
from urllib.parse import urlsplit

from app.adapters.tron.errors import ChainSettingsError
from app.adapters.tron.settings import ChainSettings
from app.services.event_store_upkeep import DEFAULT_RETENTION_MONTHS, MIN_RETENTION_MONTHS
from app.services.rate_limits import Rate, parse_rate

REPO_ROOT = Path(__file__).resolve().parent.parent

# Public on purpose: good for development, refused in production (``_check_production``).
DEV_API_KEY_PEPPER: Final = "development pepper of API keys, refused in production"
DEV_INTERNAL_SECRET: Final = "development secret between workers, refused in production"  # noqa: S105
DEV_JWT_SECRET: Final = "development secret of access tokens, refused in production"  # noqa: S105
BUILT_IN_DATABASE_PASSWORD: Final = "checkout"  # noqa: S105 - docker-compose's, refused in production
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})

Environment = Literal["development", "production"]
StoreUrl = Literal["rocksdb://", "memory://"]
SignupMode = Literal["closed", "invite", "open"]
LogFormat = Literal["text", "json"]
TelegramMode = Literal["off", "polling", "webhook"]
SmsProvider = Literal["none", "twilio"]

T = TypeVar("T")


class SettingsError(ValueError):
    """An environment variable is missing or malformed; the message names it."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True, kw_only=True)
class Settings:
    environment: Environment = "development"
    app_id: str = "crypto-checkout"
    # "json": one JSON object per log line on stderr, with trace and request ids (for Loki).
    log_format: LogFormat = "text"
    # Prefix of every topic name (public ones included), so several platforms — a test run next
    # to a developer's — can share one Kafka cluster without reading each other's messages.
    topic_namespace: str = ""
    kafka_broker: str = "kafka://127.0.0.1:9092"
    kafka_replication_factor: int = 1
    # How soon a worker killed without a goodbye (kill -9, a lost host) gives its partitions up:
    # Kafka evicts it after the session timeout, and the others rejoin at their next heartbeat
    # (docs/reliability.md, "Recovery after kill -9"). Shorter fails over faster; a worker whose
    # event loop stalls longer than this is evicted too, and rebalances for nothing.
    kafka_session_timeout: float = 8.0
    kafka_heartbeat_interval: float = 1.0
    database_url: str = "postgresql://checkout:checkout@127.0.0.1:5432/checkout"
    database_pool_max: int = 10
    redis_url: str = "redis://127.0.0.1:6379/0"
    web_host: str = "127.0.0.1"
    web_bind: str = "127.0.0.1"
    web_port: int = 6066
    store: StoreUrl = "rocksdb://"
    data_dir: Path = field(default_factory=lambda: REPO_ROOT / ".local" / "worker-data")
    log_level: str = "info"
    # Invoices: expiry chosen per invoice within these bounds (seconds).
    invoice_default_expires_in: int = 15 * 60
    invoice_min_expires_in: int = 60
    invoice_max_expires_in: int = 7 * 24 * 3600
    # After expiry, transfers to the address are still detected (flagged paid_late) this long.
    late_payment_window: int = 7 * 24 * 3600
    # Expiry waits this long past expires_at, so a transfer in a block the watcher has not yet
    # read (node lag) is not flagged late.
    expiry_grace: int = 15
    # How long an HTTP request waits for the owning agent to answer a command.
    command_timeout: float = 10.0
    # Seconds between two snapshots of the day's figures on crypto-checkout.analytics.
    analytics_interval: float = 300.0
    # The Tron network, node and deposit-address xpub (TRON_* variables,
    # app/adapters/tron/settings.py).
    chain: ChainSettings = field(default_factory=ChainSettings)
    # Webhooks (docs/webhooks.md). The keys that encrypt signing secrets at rest,
    # "kid:base64key,…", first one current; unset in development means a key file of the host
    # under CHECKOUT_DATA_DIR, and in production refuses to start.
    webhook_secret_keys: str | None = None
    # Loopback receivers (http://127.0.0.1:…) for development and tests; refused in production.
    webhook_allow_loopback: bool = False
    # Delays before the 2nd, 3rd, … attempt; empty means the documented default (about 3 days).
    webhook_retry_schedule: tuple[float, ...] = ()
    webhook_timeout: float = 10.0
    # An endpoint failing without a single success for this long is disabled.
    webhook_disable_after: float = 5 * 24 * 3600.0
    # Requests in flight per worker, and per endpoint (a slow endpoint cannot take every slot).
    webhook_concurrency: int = 64
    webhook_endpoint_concurrency: int = 8
    # How often an idle dispatcher looks for due deliveries (new ones on its worker wake it).
    webhook_poll_interval: float = 0.5
    # The edge (docs/security.md). Secrets of at least 32 characters; the development defaults
    # are public and production refuses them.
    api_key_pepper: str = field(default=DEV_API_KEY_PEPPER, repr=False)
    internal_secret: str = field(default=DEV_INTERNAL_SECRET, repr=False)
    jwt_secret: str = field(default=DEV_JWT_SECRET, repr=False)
    # The listener for /metrics and the detailed /readyz: never on the public port.
    internal_bind: str = "127.0.0.1"
    internal_port: int | None = None  # None: WEB_PORT + 1000 (or - 1000 above 64535)
    # Peers whose X-Forwarded-For is believed for the client's address (rate limits, audit).
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    # Live streams (WebSocket and SSE) a worker keeps open, in all and per client address.
    live_connections_per_worker: int = 2000
    live_connections_per_ip: int = 20
    # Rate limits (docs/security.md): N/second, N/minute or N/hour, shared by all workers.
    rate_limit_invoice_create: Rate = field(default_factory=lambda: Rate(1000, 3600.0))
    rate_limit_reads: Rate = field(default_factory=lambda: Rate(5000, 3600.0))
    rate_limit_ip: Rate = field(default_factory=lambda: Rate(100, 60.0))
    rate_limit_global: Rate = field(default_factory=lambda: Rate(1000, 1.0))
    login_failures_per_account: Rate = field(default_factory=lambda: Rate(10, 3600.0))
    login_failures_per_ip: Rate = field(default_factory=lambda: Rate(50, 3600.0))
    # Per merchant: webhook replays (each queues up to 10,000 deliveries), redeliveries, tests.
    webhook_replay_quota: Rate = field(default_factory=lambda: Rate(10, 3600.0))
    webhook_redeliver_quota: Rate = field(default_factory=lambda: Rate(300, 3600.0))
    webhook_test_quota: Rate = field(default_factory=lambda: Rate(60, 3600.0))
    access_token_minutes: int = 15
    # Self-service sign-up of new merchants (docs/dashboard.md): "closed", "invite" (with a code
    # an operator issued: `checkout create-signup-invitation`) or "open".
    signup_mode: SignupMode = "invite"
    signups_per_ip: Rate = field(default_factory=lambda: Rate(10, 3600.0))
    # The address links in emails point to (the dashboard as customers' browsers reach it).
    public_url: str = "http://127.0.0.1:6066"
    # Outgoing email (verification links): an SMTP server; locally `make infra` starts one on
    # 127.0.0.1:1025 that keeps what it receives under .local/mail/.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_starttls: bool = False
    mail_from: str = "crypto-checkout <no-reply@checkout.localhost>"
    # Where merchants' replies to notice emails go (none: no Reply-To header).
    mail_reply_to: str | None = None
    # Notices to merchant users (docs/notifications.md). The Telegram bot: "off", "polling" (the
    # leader long-polls getUpdates) or "webhook" (Telegram posts to PUBLIC_URL/telegram/webhook
    # with `telegram_webhook_secret`), on the Bot API at `telegram_api_url`.
    telegram_mode: TelegramMode = "off"
    telegram_bot_token: str | None = field(default=None, repr=False)
    telegram_api_url: str = "https://api.telegram.org"
    telegram_bot_username: str | None = None
    telegram_webhook_secret: str | None = field(default=None, repr=False)
    # SMS: off ("none") unless a provider is configured; "twilio" is Twilio's Messages API (or
    # anything speaking it at `twilio_base_url`).
    sms_provider: SmsProvider = "none"
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_base_url: str = "https://api.twilio.com"
    sms_from: str | None = None
    # The daily summary goes out once a day after this hour (UTC), for the day before.
    daily_summary_hour: int = 7
    # How often each worker's notice dispatcher looks for retries that came due.
    notice_poll_interval: float = 1.0
    # The signer (docs/money-out.md): its key files (on `sim`, unset means the public development
    # mnemonic), its signed log, and its limits per purpose: "purpose=each:per-day,…" in USDT
    # (TRX for sweep_topup).
    signer_hot_wallet_key_file: Path | None = None
    signer_deposit_xprv_file: Path | None = None
    signer_log_file: Path = field(
        default_factory=lambda: REPO_ROOT / ".local" / "signer" / "signed.jsonl"
    )
    signer_limits: str = (
        "payout=50000:200000,refund=5000:20000,sweep=1000000:100000000,sweep_topup=30:3000"
    )
    # Money out on the workers (docs/money-out.md): who pays the network fee of a refund or
    # payout ("platform", or "merchant": charged `network_fee_charge` micro-USDT each), payouts
    # approved automatically below the threshold (micro-USDT; a merchant's own one wins), sent
    # in batches of `payout_batch_size` or after `payout_batch_seconds`, with at most
    # `money_out_fee_limit` sun of energy each; the driver's tick on the leader.
    network_fee_payer: Literal["platform", "merchant"] = "platform"
    network_fee_charge: int = 1_000_000
    payout_approval_threshold: int = 1_000_000_000
    payout_batch_size: int = 20
    payout_batch_seconds: float = 30.0
    money_out_fee_limit: int = 50_000_000
    money_out_interval: float = 1.0
    # How often the leader looks for merchants' scheduled payouts that are due.
    payout_schedule_interval: float = 60.0
    # Sweeps (docs/money-out.md, "Sweeps"): deposit addresses with at least `sweep_min_usdt`
    # micro-USDT settled and not swept are swept into the hot wallet, `sweep_batch_size` at a
    # time, by the leader every `sweep_interval` seconds.
    sweep_min_usdt: int = 20_000_000
    sweep_batch_size: int = 20
    sweep_interval: float = 5.0
    # The event store's months (docs/operations.md, "The event store's lifecycle"): partitions
    # made `event_store_months_ahead` months ahead by the leader every `event_store_upkeep_interval`
    # seconds; `checkout events archive` keeps `event_store_retention_months` whole months online.
    event_store_months_ahead: int = 3
    event_store_upkeep_interval: float = 60.0
    event_store_retention_months: int = DEFAULT_RETENTION_MONTHS

    @property
    def canonical_url(self) -> str:
        """Where other workers reach this one (table routing sends key reads here)."""
        return f"http://{self.web_host}:{self.web_port}"

    @property
    def internal_listener_port(self) -> int:
        if self.internal_port is not None:
            return self.internal_port
        return self.web_port + 1000 if self.web_port <= 64535 else self.web_port - 1000

    @property
    def worker_data_dir(self) -> Path:
        """RocksDB state of this worker; one folder per web port so two workers can share a host.

        A topic namespace gets folders of its own: the tables' local stores are named by table
        only, so a run in another namespace (other changelogs, maybe another chain) would
        otherwise start from this one's state — a chain head from another node confirmed a
        payment one block after it was mined (issue "Reliability"). Without a namespace the
        folder is where it always was, so an upgrade recovers nothing it need not."""
        base = self.data_dir / self.topic_namespace if self.topic_namespace else self.data_dir
        return base / f"worker-{self.web_port}"

    @property
    def kafka_bootstrap_servers(self) -> str:
        """The broker list as plain ``host:port,…`` for clients other than Faust."""
        return ",".join(
            url.split("://", 1)[-1] for url in self.kafka_broker.replace(";", ",").split(",")
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        defaults = cls()
        settings = cls(
            environment=cast(
                Environment,
                reader.choice("CHECKOUT_ENV", defaults.environment, ("development", "production")),
            ),
            app_id=reader.get("CHECKOUT_APP_ID", defaults.app_id, _identifier),
            log_format=cast(
                LogFormat, reader.choice("LOG_FORMAT", defaults.log_format, ("text", "json"))
            ),
            topic_namespace=reader.get(
                "CHECKOUT_TOPIC_NAMESPACE", defaults.topic_namespace, _identifier
            ),
            kafka_broker=reader.get("KAFKA_BROKER", defaults.kafka_broker, _kafka_url),
            kafka_replication_factor=reader.get(
                "KAFKA_REPLICATION_FACTOR", defaults.kafka_replication_factor, _int_between(1, 5)
            ),
            # Kafka's brokers refuse sessions under 6 s (group.min.session.timeout.ms).
            kafka_session_timeout=reader.get(
                "KAFKA_SESSION_TIMEOUT", defaults.kafka_session_timeout, _float_between(6.0, 300.0)
            ),
            kafka_heartbeat_interval=reader.get(
                "KAFKA_HEARTBEAT_INTERVAL",
                defaults.kafka_heartbeat_interval,
                _float_between(0.1, 30.0),
            ),
            database_url=reader.get(
                "DATABASE_URL", defaults.database_url, _url("postgresql", "postgres"), secret=True
            ),
            database_pool_max=reader.get(
                "DATABASE_POOL_MAX", defaults.database_pool_max, _int_between(1, 200)
            ),
            redis_url=reader.get(
                "REDIS_URL", defaults.redis_url, _url("redis", "rediss", "unix"), secret=True
            ),
            web_host=reader.get("WEB_HOST", defaults.web_host, _non_empty),
            web_bind=reader.get("WEB_BIND", defaults.web_bind, _non_empty),
            web_port=reader.get("WEB_PORT", defaults.web_port, _int_between(1, 65535)),
            store=cast(
                StoreUrl,
                reader.choice("CHECKOUT_STORE", defaults.store, ("rocksdb://", "memory://")),
            ),
            data_dir=reader.get("CHECKOUT_DATA_DIR", defaults.data_dir, Path),
            invoice_default_expires_in=reader.get(
                "INVOICE_DEFAULT_EXPIRES_IN",
                defaults.invoice_default_expires_in,
                _int_between(60, 7 * 86400),
            ),
            invoice_min_expires_in=reader.get(
                "INVOICE_MIN_EXPIRES_IN",
                defaults.invoice_min_expires_in,
                _int_between(10, 7 * 86400),
            ),
            invoice_max_expires_in=reader.get(
                "INVOICE_MAX_EXPIRES_IN",
                defaults.invoice_max_expires_in,
                _int_between(60, 90 * 86400),
            ),
            late_payment_window=reader.get(
                "LATE_PAYMENT_WINDOW", defaults.late_payment_window, _int_between(0, 90 * 86400)
            ),
            expiry_grace=reader.get(
                "INVOICE_EXPIRY_GRACE", defaults.expiry_grace, _int_between(0, 3600)
            ),
            command_timeout=reader.get(
                "COMMAND_TIMEOUT", defaults.command_timeout, _float_between(0.5, 120.0)
            ),
            analytics_interval=reader.get(
                "ANALYTICS_INTERVAL", defaults.analytics_interval, _float_between(1.0, 3600.0)
            ),
            log_level=reader.choice(
                "LOG_LEVEL", defaults.log_level, ("debug", "info", "warning", "error")
            ),
            webhook_secret_keys=reader.get(
                "WEBHOOK_SECRET_KEYS", defaults.webhook_secret_keys, _keyring, secret=True
            ),
            webhook_allow_loopback=reader.get(
                "WEBHOOK_ALLOW_LOOPBACK", defaults.webhook_allow_loopback, _boolean
            ),
            webhook_retry_schedule=reader.get(
                "WEBHOOK_RETRY_SCHEDULE", defaults.webhook_retry_schedule, _retry_schedule
            ),
            webhook_timeout=reader.get(
                "WEBHOOK_TIMEOUT", defaults.webhook_timeout, _float_between(0.1, 60.0)
            ),
            webhook_disable_after=reader.get(
                "WEBHOOK_DISABLE_AFTER",
                defaults.webhook_disable_after,
                _float_between(0.1, 90 * 86400.0),
            ),
            webhook_concurrency=reader.get(
                "WEBHOOK_CONCURRENCY", defaults.webhook_concurrency, _int_between(1, 1000)
            ),
            webhook_endpoint_concurrency=reader.get(
                "WEBHOOK_ENDPOINT_CONCURRENCY",
                defaults.webhook_endpoint_concurrency,
                _int_between(1, 100),
            ),
            webhook_poll_interval=reader.get(
                "WEBHOOK_POLL_INTERVAL", defaults.webhook_poll_interval, _float_between(0.05, 60.0)
            ),
            api_key_pepper=reader.get(
                "API_KEY_PEPPER", defaults.api_key_pepper, _secret, secret=True
            ),
            internal_secret=reader.get(
                "INTERNAL_SECRET", defaults.internal_secret, _secret, secret=True
            ),
            jwt_secret=reader.get("JWT_SECRET", defaults.jwt_secret, _secret, secret=True),
            internal_bind=reader.get("INTERNAL_BIND", defaults.internal_bind, _non_empty),
            internal_port=reader.get(
                "INTERNAL_PORT", defaults.internal_port, _int_between(1, 65535)
            ),
            trusted_proxies=reader.get("TRUSTED_PROXIES", defaults.trusted_proxies, _networks),
            live_connections_per_worker=reader.get(
                "LIVE_CONNECTIONS_PER_WORKER",
                defaults.live_connections_per_worker,
                _int_between(1, 100_000),
            ),
            live_connections_per_ip=reader.get(
                "LIVE_CONNECTIONS_PER_IP", defaults.live_connections_per_ip, _int_between(1, 10_000)
            ),
            rate_limit_invoice_create=reader.get(
                "RATE_LIMIT_INVOICE_CREATE", defaults.rate_limit_invoice_create, parse_rate
            ),
            rate_limit_reads=reader.get("RATE_LIMIT_READS", defaults.rate_limit_reads, parse_rate),
            rate_limit_ip=reader.get("RATE_LIMIT_IP", defaults.rate_limit_ip, parse_rate),
            rate_limit_global=reader.get(
                "RATE_LIMIT_GLOBAL", defaults.rate_limit_global, parse_rate
            ),
            login_failures_per_account=reader.get(
                "LOGIN_FAILURES_PER_ACCOUNT", defaults.login_failures_per_account, parse_rate
            ),
            login_failures_per_ip=reader.get(
                "LOGIN_FAILURES_PER_IP", defaults.login_failures_per_ip, parse_rate
            ),
            webhook_replay_quota=reader.get(
                "WEBHOOK_REPLAY_QUOTA", defaults.webhook_replay_quota, parse_rate
            ),
            webhook_redeliver_quota=reader.get(
                "WEBHOOK_REDELIVER_QUOTA", defaults.webhook_redeliver_quota, parse_rate
            ),
            webhook_test_quota=reader.get(
                "WEBHOOK_TEST_QUOTA", defaults.webhook_test_quota, parse_rate
            ),
            access_token_minutes=reader.get(
                "ACCESS_TOKEN_MINUTES", defaults.access_token_minutes, _int_between(1, 1440)
            ),
            signup_mode=cast(
                SignupMode,
                reader.choice("SIGNUP_MODE", defaults.signup_mode, ("closed", "invite", "open")),
            ),
            signups_per_ip=reader.get("SIGNUPS_PER_IP", defaults.signups_per_ip, parse_rate),
            public_url=reader.get("PUBLIC_URL", defaults.public_url, _base_url),
            smtp_host=reader.get("SMTP_HOST", defaults.smtp_host, _non_empty),
            smtp_port=reader.get("SMTP_PORT", defaults.smtp_port, _int_between(1, 65535)),
            smtp_username=reader.get("SMTP_USERNAME", defaults.smtp_username, _non_empty),
            smtp_password=reader.get(
                "SMTP_PASSWORD", defaults.smtp_password, _non_empty, secret=True
            ),
            smtp_starttls=reader.get("SMTP_STARTTLS", defaults.smtp_starttls, _boolean),
            mail_from=reader.get("MAIL_FROM", defaults.mail_from, _non_empty),
            mail_reply_to=reader.get("MAIL_REPLY_TO", defaults.mail_reply_to, _non_empty),
            telegram_mode=cast(
                TelegramMode,
                reader.choice(
                    "TELEGRAM_MODE", defaults.telegram_mode, ("off", "polling", "webhook")
                ),
            ),
            telegram_bot_token=reader.get(
                "TELEGRAM_BOT_TOKEN", defaults.telegram_bot_token, _bot_token, secret=True
            ),
            telegram_api_url=reader.get("TELEGRAM_API_URL", defaults.telegram_api_url, _base_url),
            telegram_bot_username=reader.get(
                "TELEGRAM_BOT_USERNAME", defaults.telegram_bot_username, _bot_username
            ),
            telegram_webhook_secret=reader.get(
                "TELEGRAM_WEBHOOK_SECRET",
                defaults.telegram_webhook_secret,
                _webhook_secret_token,
                secret=True,
            ),
            sms_provider=cast(
                SmsProvider,
                reader.choice("SMS_PROVIDER", defaults.sms_provider, ("none", "twilio")),
            ),
            twilio_account_sid=reader.get(
                "TWILIO_ACCOUNT_SID", defaults.twilio_account_sid, _non_empty
            ),
            twilio_auth_token=reader.get(
                "TWILIO_AUTH_TOKEN", defaults.twilio_auth_token, _non_empty, secret=True
            ),
            twilio_base_url=reader.get("TWILIO_BASE_URL", defaults.twilio_base_url, _base_url),
            sms_from=reader.get("SMS_FROM", defaults.sms_from, _phone_number),
            daily_summary_hour=reader.get(
                "DAILY_SUMMARY_HOUR", defaults.daily_summary_hour, _int_between(0, 23)
            ),
            notice_poll_interval=reader.get(
                "NOTICE_POLL_INTERVAL", defaults.notice_poll_interval, _float_between(0.05, 60.0)
            ),
            signer_hot_wallet_key_file=reader.get(
                "SIGNER_HOT_WALLET_KEY_FILE", defaults.signer_hot_wallet_key_file, Path
            ),
            signer_deposit_xprv_file=reader.get(
                "SIGNER_DEPOSIT_XPRV_FILE", defaults.signer_deposit_xprv_file, Path
            ),
            signer_log_file=reader.get("SIGNER_LOG_FILE", defaults.signer_log_file, Path),
            signer_limits=reader.get("SIGNER_LIMITS", defaults.signer_limits, _signer_limits),
            network_fee_payer=cast(
                Literal["platform", "merchant"],
                reader.choice(
                    "NETWORK_FEE_PAYER", defaults.network_fee_payer, ("platform", "merchant")
                ),
            ),
            network_fee_charge=reader.get(
                "NETWORK_FEE_CHARGE", defaults.network_fee_charge, _usdt_setting
            ),
            payout_approval_threshold=reader.get(
                "PAYOUT_APPROVAL_THRESHOLD", defaults.payout_approval_threshold, _usdt_setting
            ),
            payout_batch_size=reader.get(
                "PAYOUT_BATCH_SIZE", defaults.payout_batch_size, _int_between(1, 500)
            ),
            payout_batch_seconds=reader.get(
                "PAYOUT_BATCH_SECONDS", defaults.payout_batch_seconds, _float_between(0, 86400)
            ),
            money_out_fee_limit=reader.get(
                "MONEY_OUT_FEE_LIMIT", defaults.money_out_fee_limit, _trx_setting
            ),
            money_out_interval=reader.get(
                "MONEY_OUT_INTERVAL", defaults.money_out_interval, _float_between(0.1, 60)
            ),
            payout_schedule_interval=reader.get(
                "PAYOUT_SCHEDULE_INTERVAL",
                defaults.payout_schedule_interval,
                _float_between(0.5, 3600),
            ),
            sweep_min_usdt=reader.get("SWEEP_MIN_USDT", defaults.sweep_min_usdt, _usdt_setting),
            sweep_batch_size=reader.get(
                "SWEEP_BATCH_SIZE", defaults.sweep_batch_size, _int_between(1, 500)
            ),
            sweep_interval=reader.get(
                "SWEEP_INTERVAL", defaults.sweep_interval, _float_between(0.1, 3600)
            ),
            event_store_months_ahead=reader.get(
                "EVENT_STORE_MONTHS_AHEAD", defaults.event_store_months_ahead, _int_between(1, 24)
            ),
            event_store_upkeep_interval=reader.get(
                "EVENT_STORE_UPKEEP_INTERVAL",
                defaults.event_store_upkeep_interval,
                _float_between(1, 3600),
            ),
            event_store_retention_months=reader.get(
                "EVENT_STORE_RETENTION_MONTHS",
                defaults.event_store_retention_months,
                _int_between(MIN_RETENTION_MONTHS, 1200),
            ),
        )
        try:
            chain = ChainSettings.from_env(env)
        except ChainSettingsError as exc:
            raise SettingsError(exc.variable, str(exc).split(": ", 1)[-1]) from None
        if settings.environment == "production" and chain.network == "sim":
            raise SettingsError(
                "TRON_NETWORK",
                "sim is the local simulator; production needs nile, shasta or mainnet",
            )
        settings = replace(settings, chain=chain)
        _check_notice_channels(settings)
        if settings.environment == "production":
            _check_production(settings)
        if not (
            settings.invoice_min_expires_in
            <= settings.invoice_default_expires_in
            <= settings.invoice_max_expires_in
        ):
            raise SettingsError(
                "INVOICE_DEFAULT_EXPIRES_IN",
                "must lie between INVOICE_MIN_EXPIRES_IN and INVOICE_MAX_EXPIRES_IN",
            )
        if settings.kafka_heartbeat_interval * 3 > settings.kafka_session_timeout:
            # Kafka's rule: a few heartbeats must fit in a session, or a healthy worker is evicted.
            raise SettingsError(
                "KAFKA_HEARTBEAT_INTERVAL", "must be at most a third of KAFKA_SESSION_TIMEOUT"
            )
        return settings


def _check_notice_channels(settings: Settings) -> None:
    """A channel that is on has what it needs to send."""
    if settings.telegram_mode != "off" and settings.telegram_bot_token is None:
        raise SettingsError(
            "TELEGRAM_BOT_TOKEN", f"required with TELEGRAM_MODE={settings.telegram_mode}"
        )
    if settings.telegram_mode == "webhook" and settings.telegram_webhook_secret is None:
        raise SettingsError(
            "TELEGRAM_WEBHOOK_SECRET",
            "required with TELEGRAM_MODE=webhook: Telegram sends it with every update",
        )
    if settings.sms_provider == "twilio":
        for variable, value in (
            ("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
            ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
            ("SMS_FROM", settings.sms_from),
        ):
            if value is None:
                raise SettingsError(variable, "required with SMS_PROVIDER=twilio")


def _bot_token(raw: str) -> str:
    if not re.fullmatch(r"[0-9]{1,20}:[A-Za-z0-9_-]{1,100}", raw):
        raise ValueError("expected a bot token like 123456:ABC-DEF1234 (from @BotFather)")
    return raw


def _bot_username(raw: str) -> str:
    name = raw.removeprefix("@")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{3,31}", name):
        raise ValueError("expected the bot's username, e.g. checkout_bot")
    return name


def _webhook_secret_token(raw: str) -> str:
    # Telegram's rule for setWebhook's secret_token.
    if not re.fullmatch(r"[A-Za-z0-9_-]{16,256}", raw):
        raise ValueError("expected 16 to 256 characters of A-Z, a-z, 0-9, _ and -")
    return raw


def _phone_number(raw: str) -> str:
    if not re.fullmatch(r"\+[1-9][0-9]{6,14}", raw):
        raise ValueError("expected an international number like +15005550006 (E.164)")
    return raw


def _check_production(settings: Settings) -> None:
    """What production refuses to start with: the development secrets and credentials, the
    webhook shortcuts of development, a remote Tron node over plain http."""
    if settings.webhook_secret_keys is None:
        raise SettingsError(
            "WEBHOOK_SECRET_KEYS",
            "required in production: the keys that encrypt webhook signing secrets "
            "(python -m app.adapters.webhooks.secrets prints a new one)",
        )
    if settings.webhook_allow_loopback:
        raise SettingsError(
            "WEBHOOK_ALLOW_LOOPBACK", "is for development and tests; refused in production"
        )
    if not settings.public_url.startswith("https://"):
        raise SettingsError(
            "PUBLIC_URL", "production serves the dashboard over https: give its https:// address"
        )
    for variable, value, default in (
        ("API_KEY_PEPPER", settings.api_key_pepper, DEV_API_KEY_PEPPER),
        ("INTERNAL_SECRET", settings.internal_secret, DEV_INTERNAL_SECRET),
        ("JWT_SECRET", settings.jwt_secret, DEV_JWT_SECRET),
    ):
        if value == default:
            raise SettingsError(
                variable,
                "required in production: 32 or more random characters "
                "(python -c 'import secrets; print(secrets.token_urlsafe(32))'); "
                "the development default is public",
            )
    if urlsplit(settings.database_url).password in (None, "", BUILT_IN_DATABASE_PASSWORD):
        raise SettingsError(
            "DATABASE_URL", "production refuses the built-in credentials: give a password"
        )
    redis = urlsplit(settings.redis_url)
    if redis.scheme != "unix" and not redis.password:
        raise SettingsError(
            "REDIS_URL", "production refuses Redis without a password (redis://:password@host)"
        )
    node = urlsplit(settings.chain.node_url)
    if node.scheme == "http" and node.hostname not in LOOPBACK_HOSTS:
        raise SettingsError(
            "TRON_NODE_URL", "production refuses a remote node over plain http: use https"
        )


class _Reader:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def get(
        self, variable: str, default: T, parse: Callable[[str], T], *, secret: bool = False
    ) -> T:
        raw = self._environ.get(variable)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except (ValueError, TypeError) as exc:
            # URLs may carry passwords: those are named, never echoed.
            shown = "" if secret else f" (got {raw!r})"
            raise SettingsError(variable, f"{exc}{shown}") from None

    def choice(self, variable: str, default: str, allowed: tuple[str, ...]) -> str:
        def parse(raw: str) -> str:
            if raw.lower() not in allowed:
                raise ValueError(f"expected one of {', '.join(allowed)}")
            return raw.lower()

        return self.get(variable, default, parse)


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _retry_schedule(raw: str) -> tuple[float, ...]:
    from app.adapters.webhooks.schedule import parse_retry_schedule

    return parse_retry_schedule(raw)


def _keyring(raw: str) -> str:
    from app.adapters.webhooks.secrets import SecretKeyring

    SecretKeyring.parse(raw)  # only validated here; the worker builds its keyring at start
    return raw


def _secret(raw: str) -> str:
    if len(raw) < 32:
        raise ValueError("expected 32 or more characters")
    return raw


def _signer_limits(raw: str) -> str:
    parse_signer_limits(raw)  # refused here, at start, naming the variable
    return raw


def parse_signer_limits(raw: str) -> dict[str, tuple[int, int]]:
    """ "payout=50000:200000,…" → {purpose: (each, per day)} in micro-units (USDT or TRX)."""
    limits: dict[str, tuple[int, int]] = {}
    for item in raw.split(","):
        name, _, values = item.strip().partition("=")
        each, _, daily = values.partition(":")
        if name not in ("payout", "refund", "sweep", "sweep_topup") or not (
            each.isdecimal() and daily.isdecimal()
        ):
            raise ValueError(
                "expected purpose=each:per-day items (payout, refund, sweep, sweep_topup), "
                "e.g. payout=50000:200000"
            )
        limits[name] = (int(each) * 1_000_000, int(daily) * 1_000_000)
    return limits


def _usdt_setting(raw: str) -> int:
    """A USDT amount ("1.50") in micro-USDT, zero allowed."""
    from app.domain.errors import InvalidAmount
    from app.domain.money import parse_usdt

    try:
        return parse_usdt(raw, field="setting", allow_zero=True)
    except InvalidAmount as exc:
        raise ValueError(f"expected an amount of USDT such as 1.50: {exc.message}") from None


def _trx_setting(raw: str) -> int:
    """A TRX amount ("50") in sun, from 1 to 1,000 TRX."""
    try:
        value = Decimal(raw)
    except ArithmeticError:
        raise ValueError("expected a number of TRX") from None
    sun = value * 1_000_000
    if sun != sun.to_integral_value() or not 1_000_000 <= sun <= 1_000_000_000:
        raise ValueError("expected TRX from 1 to 1000 with at most 6 decimals")
    return int(sun)


def _base_url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not value.startswith(("https://", "http://")) or len(value) > 200 or " " in value:
        raise ValueError("expected an absolute http(s) URL such as https://pay.example.com")
    return value


def _networks(raw: str) -> tuple[IPv4Network | IPv6Network, ...]:
    try:
        return tuple(ip_network(item.strip(), strict=False) for item in raw.split(",") if item)
    except ValueError:
        raise ValueError(
            "expected IP addresses or networks, e.g. 10.0.0.0/8,192.168.1.10"
        ) from None


def _non_empty(raw: str) -> str:
    return raw


def _identifier(raw: str) -> str:
    if not all(ch.isalnum() or ch in "-_." for ch in raw):
        raise ValueError("expected letters, digits, '-', '_' or '.' only")
    return raw


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("expected a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"expected a number from {low} to {high}")
        return value

    return parse


def _float_between(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("expected a number") from None
        if not low <= value <= high:
            raise ValueError(f"expected a number from {low:g} to {high:g}")
        return value

    return parse


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme not in schemes:
            expected = " or ".join(f"{scheme}://" for scheme in schemes)
            raise ValueError(f"expected a URL starting with {expected}")
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("the URL has no host")
        return raw

    return parse


def _kafka_url(raw: str) -> str:
    for url in raw.replace(";", ",").split(","):
        parts = urlsplit(url if "://" in url else f"kafka://{url}")
        if parts.scheme != "kafka" or not parts.hostname or parts.port is None:
            raise ValueError("expected kafka://host:port, or several separated by commas")
    return raw
