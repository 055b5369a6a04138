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


def test_production_needs_webhook_keys_and_refuses_loopback_receivers() -> None:
    with pytest.raises(SettingsError) as missing:
        Settings.from_env(_PRODUCTION)
    assert missing.value.variable == "WEBHOOK_SECRET_KEYS"
    keys = "k1:" + "A" * 43 + "="
    assert Settings.from_env({**_PRODUCTION, "WEBHOOK_SECRET_KEYS": keys}).environment == (
        "production"
    )
    with pytest.raises(SettingsError) as loopback:
        Settings.from_env(
            {**_PRODUCTION, "WEBHOOK_SECRET_KEYS": keys, "WEBHOOK_ALLOW_LOOPBACK": "true"}
        )
    assert loopback.value.variable == "WEBHOOK_ALLOW_LOOPBACK"
