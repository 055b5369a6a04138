from __future__ import annotations

import pytest
from bip_utils import Bip39SeedGenerator, Bip44, Bip44Coins

from app.adapters.tron.errors import ChainSettingsError
from app.adapters.tron.settings import DEV_XPUB, MAINNET_USDT, ChainSettings

pytestmark = pytest.mark.unit

NILE_USDT = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"


def other_xpub() -> str:
    seed = Bip39SeedGenerator(" ".join(["zoo"] * 11 + ["wrong"])).Generate()
    account = Bip44.FromSeed(seed, Bip44Coins.TRON).Purpose().Coin().Account(0)
    return str(account.PublicKey().ToExtended())


def test_the_simulator_profile_runs_on_defaults() -> None:
    settings = ChainSettings.from_env({})

    assert settings.network == "sim"
    assert settings.node_url == "http://127.0.0.1:8090/"
    assert settings.usdt_contract == MAINNET_USDT
    assert settings.xpub == DEV_XPUB
    assert settings.api_key is None
    assert settings.start_height is None


def test_every_variable_is_read() -> None:
    settings = ChainSettings.from_env(
        {
            "TRON_NETWORK": "nile",
            "TRON_NODE_URL": "https://nile.trongrid.io",
            "TRON_API_KEY": "k-123",
            "TRON_USDT_CONTRACT": "41eca9bc828a3005b9a3b909f2cc5c2a54794de05f",
            "TRON_XPUB": other_xpub(),
            "TRON_WATCHER_START_HEIGHT": "51234567",
            "TRON_POLL_INTERVAL": "0.5",
            "TRON_REQUEST_TIMEOUT": "4",
            "TRON_REORG_WINDOW": "40",
            "TRON_FETCH_CONCURRENCY": "16",
        }
    )

    assert settings.network == "nile"
    assert settings.node_url == "https://nile.trongrid.io/"
    assert settings.api_key == "k-123"
    assert settings.usdt_contract == NILE_USDT  # hex input normalised to base58
    assert settings.start_height == 51_234_567
    assert (settings.poll_interval, settings.request_timeout) == (0.5, 4.0)
    assert (settings.reorg_window, settings.fetch_concurrency) == (40, 16)
    assert settings.watcher_name == "tron-usdt-nile"


def test_the_api_key_never_shows_in_repr() -> None:
    settings = ChainSettings.from_env({"TRON_API_KEY": "super-secret-key"})

    assert "super-secret-key" not in repr(settings)


@pytest.mark.parametrize("network", ["nile", "shasta", "mainnet"])
def test_real_networks_refuse_to_start_without_an_explicit_xpub(network: str) -> None:
    with pytest.raises(ChainSettingsError, match="TRON_XPUB") as caught:
        ChainSettings.from_env({"TRON_NETWORK": network, "TRON_USDT_CONTRACT": MAINNET_USDT})

    assert caught.value.variable == "TRON_XPUB"
    assert isinstance(caught.value, ValueError)


def test_mainnet_refuses_the_well_known_dev_xpub() -> None:
    with pytest.raises(ChainSettingsError, match="TRON_XPUB"):
        ChainSettings.from_env({"TRON_NETWORK": "mainnet", "TRON_XPUB": DEV_XPUB})


def test_mainnet_defaults_to_mainnet_usdt() -> None:
    settings = ChainSettings.from_env({"TRON_NETWORK": "mainnet", "TRON_XPUB": other_xpub()})

    assert settings.usdt_contract == MAINNET_USDT


@pytest.mark.parametrize("network", ["nile", "shasta"])
def test_testnets_need_their_usdt_contract(network: str) -> None:
    with pytest.raises(ChainSettingsError, match="TRON_USDT_CONTRACT"):
        ChainSettings.from_env({"TRON_NETWORK": network, "TRON_XPUB": other_xpub()})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRON_NETWORK", "ropsten"),
        ("TRON_NODE_URL", "127.0.0.1:8090"),
        ("TRON_NODE_URL", "ftp://node"),
        ("TRON_USDT_CONTRACT", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6T"),
        ("TRON_USDT_CONTRACT", "usdt"),
        ("TRON_XPUB", "xpub-garbage"),
        ("TRON_WATCHER_START_HEIGHT", "-1"),
        ("TRON_WATCHER_START_HEIGHT", "12.5"),
        ("TRON_POLL_INTERVAL", "0"),
        ("TRON_POLL_INTERVAL", "soon"),
        ("TRON_REQUEST_TIMEOUT", "-3"),
        ("TRON_REORG_WINDOW", "1"),
        ("TRON_FETCH_CONCURRENCY", "0"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ChainSettingsError) as caught:
        ChainSettings.from_env({variable: value})

    assert caught.value.variable == variable
    assert str(caught.value).startswith(variable)


def test_a_private_extended_key_in_tron_xpub_is_refused() -> None:
    seed = Bip39SeedGenerator(" ".join(["zoo"] * 11 + ["wrong"])).Generate()
    xprv = Bip44.FromSeed(seed, Bip44Coins.TRON).Purpose().Coin().Account(0).PrivateKey()

    with pytest.raises(ChainSettingsError, match=r"TRON_XPUB.*PRIVATE") as caught:
        ChainSettings.from_env({"TRON_XPUB": xprv.ToExtended()})

    assert xprv.ToExtended() not in str(caught.value)
