"""Settings come from the environment and a bad variable is named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.adapters.tron.settings import DEV_XPUB
from app.settings import Settings, SettingsError

pytestmark = pytest.mark.unit


def test_defaults_point_at_the_local_platform() -> None:
    settings = Settings.from_env({})
    assert settings.kafka_broker == "kafka://127.0.0.1:9092"
    assert settings.web_port == 6066
    assert settings.store == "rocksdb://"
    assert settings.canonical_url == "http://127.0.0.1:6066"
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"


def test_each_worker_port_gets_its_own_state_folder() -> None:
    first = Settings.from_env({"WEB_PORT": "6066", "CHECKOUT_DATA_DIR": "/tmp/x"})
    second = Settings.from_env({"WEB_PORT": "6067", "CHECKOUT_DATA_DIR": "/tmp/x"})
    assert first.worker_data_dir == Path("/tmp/x/worker-6066")
    assert second.worker_data_dir != first.worker_data_dir


def test_each_topic_namespace_gets_its_own_state() -> None:
    # Tables' local stores are named by table only: another namespace's must never be reused.
    env = {"WEB_PORT": "6066", "CHECKOUT_DATA_DIR": "/tmp/x"}
    staging = Settings.from_env({**env, "CHECKOUT_TOPIC_NAMESPACE": "staging"})
    trial = Settings.from_env({**env, "CHECKOUT_TOPIC_NAMESPACE": "trial"})
    assert staging.worker_data_dir == Path("/tmp/x/staging/worker-6066")
    assert trial.worker_data_dir == Path("/tmp/x/trial/worker-6066")
    assert Settings.from_env(env).worker_data_dir == Path("/tmp/x/worker-6066")


def test_several_brokers_become_a_bootstrap_list() -> None:
    settings = Settings.from_env({"KAFKA_BROKER": "kafka://10.0.0.1:9092,kafka://10.0.0.2:9092"})
    assert settings.kafka_bootstrap_servers == "10.0.0.1:9092,10.0.0.2:9092"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("WEB_PORT", "abc", "WEB_PORT: expected a whole number"),
        ("WEB_PORT", "70000", "WEB_PORT: expected a number from 1 to 65535"),
        ("KAFKA_BROKER", "127.0.0.1", "KAFKA_BROKER: expected kafka://host:port"),
        ("KAFKA_BROKER", "http://x:1", "KAFKA_BROKER: expected kafka://host:port"),
        (
            "DATABASE_URL",
            "mysql://db/x",
            "DATABASE_URL: expected a URL starting with postgresql://",
        ),
        ("REDIS_URL", "redis://", "REDIS_URL: the URL has no host"),
        ("CHECKOUT_ENV", "staging", "CHECKOUT_ENV: expected one of development, production"),
        ("CHECKOUT_STORE", "aerospike://", "CHECKOUT_STORE: expected one of rocksdb://, memory://"),
        ("CHECKOUT_APP_ID", "a b", "CHECKOUT_APP_ID: expected letters"),
        (
            "KAFKA_REPLICATION_FACTOR",
            "0",
            "KAFKA_REPLICATION_FACTOR: expected a number from 1 to 5",
        ),
    ],
)
def test_a_bad_variable_is_named(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match="^" + message.replace("+", r"\+")) as caught:
        Settings.from_env({variable: value})
    assert caught.value.variable == variable


def test_failover_timing_is_bounded_and_keeps_heartbeats_within_the_session() -> None:
    settings = Settings.from_env({})
    assert (settings.kafka_session_timeout, settings.kafka_heartbeat_interval) == (8.0, 1.0)
    with pytest.raises(SettingsError, match=r"^KAFKA_SESSION_TIMEOUT: expected a number from 6"):
        Settings.from_env({"KAFKA_SESSION_TIMEOUT": "3"})
    with pytest.raises(SettingsError, match=r"^KAFKA_HEARTBEAT_INTERVAL: must be at most a third"):
        Settings.from_env({"KAFKA_SESSION_TIMEOUT": "9", "KAFKA_HEARTBEAT_INTERVAL": "3.5"})


def test_secrets_in_urls_are_not_echoed() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"DATABASE_URL": "mysql://user:hunter2@db/x"})
    assert "hunter2" not in str(caught.value)


def test_blank_means_default() -> None:
    assert Settings.from_env({"WEB_PORT": "  "}).web_port == 6066


_PRODUCTION = {
    "CHECKOUT_ENV": "production",
    "TRON_NETWORK": "nile",
    "TRON_USDT_CONTRACT": "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf",
    "TRON_XPUB": DEV_XPUB,  # any valid account xpub; production would bring its own
}


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("WEBHOOK_ALLOW_LOOPBACK", "maybe", "WEBHOOK_ALLOW_LOOPBACK: expected true or false"),
        ("WEBHOOK_RETRY_SCHEDULE", "10s,soon", "WEBHOOK_RETRY_SCHEDULE: retry schedule item 2"),
        ("WEBHOOK_SECRET_KEYS", "k1:not-base64!", "WEBHOOK_SECRET_KEYS: "),
        ("WEBHOOK_TIMEOUT", "0", "WEBHOOK_TIMEOUT: expected a number from 0.1 to 60"),
    ],
)
def test_a_bad_webhook_variable_is_named(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match="^" + message) as caught:
        Settings.from_env({variable: value})
    assert caught.value.variable == variable
    if variable == "WEBHOOK_SECRET_KEYS":
        assert "not-base64" not in str(caught.value)  # a key is never echoed


def test_webhook_settings_parse() -> None:
    settings = Settings.from_env(
        {"WEBHOOK_RETRY_SCHEDULE": "1s,2m", "WEBHOOK_ALLOW_LOOPBACK": "true"}
    )
    assert settings.webhook_retry_schedule == (1.0, 120.0)
    assert settings.webhook_allow_loopback is True


_KEYS = "k1:" + "A" * 43 + "="
_PRODUCTION_READY = {
    **_PRODUCTION,
    "WEBHOOK_SECRET_KEYS": _KEYS,
    "API_KEY_PEPPER": "p" * 32,
    "INTERNAL_SECRET": "i" * 32,
    "JWT_SECRET": "j" * 32,
    "DATABASE_URL": "postgresql://checkout:a-real-password@db:5432/checkout",
    "REDIS_URL": "redis://:a-real-password@redis:6379/0",
    "PUBLIC_URL": "https://pay.example.com/",
}


def test_production_wants_an_https_public_url() -> None:
    environ = {**_PRODUCTION_READY, "PUBLIC_URL": "http://pay.example.com"}
    with pytest.raises(SettingsError, match=r"^PUBLIC_URL: production serves"):
        Settings.from_env(environ)
    assert Settings.from_env(_PRODUCTION_READY).public_url == "https://pay.example.com"


def test_production_starts_with_its_own_secrets_and_credentials() -> None:
    settings = Settings.from_env(_PRODUCTION_READY)
    assert settings.environment == "production"
    assert settings.api_key_pepper == "p" * 32
    assert "p" * 32 not in repr(settings)  # secrets stay out of logs


def test_production_needs_webhook_keys() -> None:
    without = {k: v for k, v in _PRODUCTION_READY.items() if k != "WEBHOOK_SECRET_KEYS"}
    with pytest.raises(SettingsError) as missing:
        Settings.from_env(without)
    assert missing.value.variable == "WEBHOOK_SECRET_KEYS"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WEBHOOK_ALLOW_LOOPBACK", "true"),
        ("API_KEY_PEPPER", None),
        ("INTERNAL_SECRET", None),
        ("JWT_SECRET", None),
        ("DATABASE_URL", "postgresql://checkout:checkout@db:5432/checkout"),
        ("DATABASE_URL", "postgresql://checkout@db:5432/checkout"),
        ("REDIS_URL", "redis://redis:6379/0"),
        ("TRON_NODE_URL", "http://node.example.com:8090"),
    ],
)
def test_production_refuses_what_is_only_for_development(variable: str, value: str | None) -> None:
    environ = dict(_PRODUCTION_READY)
    if value is None:
        del environ[variable]  # the public development default
    else:
        environ[variable] = value
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(environ)
    assert refused.value.variable == variable
    assert "a-real-password" not in str(refused.value)


def test_production_accepts_a_node_on_loopback_over_http() -> None:
    environ = {**_PRODUCTION_READY, "TRON_NODE_URL": "http://127.0.0.1:8090"}
    assert Settings.from_env(environ).chain.node_url.startswith("http://127.0.0.1:8090")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("API_KEY_PEPPER", "short", "API_KEY_PEPPER: expected 32 or more characters"),
        ("TRUSTED_PROXIES", "10.0.0.0/8,nonsense", "TRUSTED_PROXIES: expected IP addresses"),
        ("INTERNAL_PORT", "0", "INTERNAL_PORT: expected a number from 1 to 65535"),
        (
            "LIVE_CONNECTIONS_PER_IP",
            "0",
            "LIVE_CONNECTIONS_PER_IP: expected a number from 1 to 10000",
        ),
    ],
)
def test_a_bad_edge_variable_is_named(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match="^" + message) as caught:
        Settings.from_env({variable: value})
    assert caught.value.variable == variable
    assert "short" not in str(caught.value)  # secrets are never echoed


def test_trusted_proxies_and_the_internal_port() -> None:
    settings = Settings.from_env(
        {"TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.10", "WEB_PORT": "6066"}
    )
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "192.168.1.10/32"]
    assert settings.internal_listener_port == 7066
    assert Settings.from_env({"WEB_PORT": "65000"}).internal_listener_port == 64000
    assert Settings.from_env({"INTERNAL_PORT": "9100"}).internal_listener_port == 9100
