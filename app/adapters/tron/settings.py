"""Chain settings, read once from the environment and validated at start.

Every error names the environment variable to fix. The API key is a secret: it is kept out of
``repr`` and never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args
from urllib.parse import urlsplit

from app.adapters.tron.addresses import to_base58
from app.adapters.tron.deposit_addresses import validate_account_xpub
from app.adapters.tron.errors import ChainSettingsError, InvalidXpub

Network = Literal["sim", "nile", "shasta", "mainnet"]
NETWORKS: tuple[Network, ...] = get_args(Network)

MAINNET_USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"

# The account xpub (m/44'/195'/0') of the public BIP39 test mnemonic "abandon ×11 about". Public by
# construction, and used only on the simulator: real funds must never go to a well-known seed.
DEV_XPUB = (
    "xpub6D1AabNHCupeiLM65ZR9UStMhJ1vCpyV4XbZdyhMZBiJX"
    "ALQtmn9p42VTQckoHVn8WNqS7dqnJokZHAHcHGoaQgmv8D45oNUKx6DZMNZBCd"
)

# The hot wallet of the same public development mnemonic, m/44'/195'/1'/0/0 (the signer derives
# its key; the workers only ever know the address). Simulator only.
DEV_HOT_WALLET = "TLrpNTBuCpGMrB9TyVwgEhNVRhtWEQPHh4"

# A self-hosted java-tron node serves its HTTP API on 8090; the public testnets are reachable on
# TronGrid. Mainnet defaults to a node of our own: TronGrid's free tier is too tight to rely on.
DEFAULT_NODE_URLS: Mapping[Network, str] = {
    "sim": "http://127.0.0.1:8090",
    "nile": "https://nile.trongrid.io",
    "shasta": "https://api.shasta.trongrid.io",
    "mainnet": "http://127.0.0.1:8090",
}

# The simulator mints the mainnet USDT address; testnet USDT deployments vary between sources, so
# their address must be given explicitly (and decimals() is checked at start in every case).
DEFAULT_USDT_CONTRACTS: Mapping[Network, str | None] = {
    "sim": MAINNET_USDT,
    "nile": None,
    "shasta": None,
    "mainnet": MAINNET_USDT,
}


@dataclass(frozen=True, kw_only=True)
class ChainSettings:
    network: Network = "sim"
    node_url: str = DEFAULT_NODE_URLS["sim"]
    api_key: str | None = field(default=None, repr=False)
    usdt_contract: str = MAINNET_USDT
    xpub: str = DEV_XPUB
    # Where refunds and payouts are paid from and sweeps go to; None: money out is off.
    hot_wallet_address: str | None = DEV_HOT_WALLET
    start_height: int | None = None
    poll_interval: float = 1.0
    request_timeout: float = 10.0
    reorg_window: int = 32
    fetch_concurrency: int = 8
    watcher_name: str = "tron-usdt"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ChainSettings:
        network = _network(environ)
        return cls(
            network=network,
            node_url=_node_url(environ, network),
            api_key=environ.get("TRON_API_KEY") or None,
            usdt_contract=_usdt_contract(environ, network),
            xpub=_xpub(environ, network),
            hot_wallet_address=_hot_wallet(environ, network),
            start_height=_optional_int(environ, "TRON_WATCHER_START_HEIGHT", minimum=0),
            poll_interval=_positive_float(environ, "TRON_POLL_INTERVAL", 1.0),
            request_timeout=_positive_float(environ, "TRON_REQUEST_TIMEOUT", 10.0),
            reorg_window=_int(environ, "TRON_REORG_WINDOW", 32, minimum=2),
            fetch_concurrency=_int(environ, "TRON_FETCH_CONCURRENCY", 8, minimum=1),
            # One cursor per name in PostgreSQL: two platforms sharing a database need two names.
            watcher_name=environ.get("TRON_WATCHER_NAME") or f"tron-usdt-{network}",
        )


def _network(environ: Mapping[str, str]) -> Network:
    value = environ.get("TRON_NETWORK", "sim").strip().lower()
    for network in NETWORKS:
        if value == network:
            return network
    raise ChainSettingsError("TRON_NETWORK", f"must be one of {', '.join(NETWORKS)}, got {value!r}")


def _node_url(environ: Mapping[str, str], network: Network) -> str:
    value = environ.get("TRON_NODE_URL") or DEFAULT_NODE_URLS[network]
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ChainSettingsError("TRON_NODE_URL", f"must be an http(s) URL, got {value!r}")
    return value.rstrip("/") + "/"


def _usdt_contract(environ: Mapping[str, str], network: Network) -> str:
    value = environ.get("TRON_USDT_CONTRACT") or DEFAULT_USDT_CONTRACTS[network]
    if value is None:
        raise ChainSettingsError(
            "TRON_USDT_CONTRACT", f"is required on {network}: testnet USDT addresses vary"
        )
    try:
        return to_base58(value.strip())
    except ValueError:
        raise ChainSettingsError(
            "TRON_USDT_CONTRACT", f"is not a Tron address: {value!r}"
        ) from None


def _xpub(environ: Mapping[str, str], network: Network) -> str:
    value = environ.get("TRON_XPUB", "").strip()
    if not value:
        if network != "sim":
            raise ChainSettingsError(
                "TRON_XPUB", f"is required on {network}: the dev xpub is for the simulator only"
            )
        return DEV_XPUB
    try:
        validate_account_xpub(value)
    except InvalidXpub as exc:
        raise ChainSettingsError("TRON_XPUB", str(exc)) from None
    if network == "mainnet" and value == DEV_XPUB:
        raise ChainSettingsError(
            "TRON_XPUB", "is the public dev xpub of a well-known test mnemonic; never on mainnet"
        )
    return value


def _hot_wallet(environ: Mapping[str, str], network: Network) -> str | None:
    value = environ.get("TRON_HOT_WALLET_ADDRESS", "").strip()
    if not value:
        return DEV_HOT_WALLET if network == "sim" else None
    try:
        address = to_base58(value)
    except ValueError:
        raise ChainSettingsError(
            "TRON_HOT_WALLET_ADDRESS", f"is not a Tron address: {value!r}"
        ) from None
    if network == "mainnet" and address == DEV_HOT_WALLET:
        raise ChainSettingsError(
            "TRON_HOT_WALLET_ADDRESS", "is the public development hot wallet; never on mainnet"
        )
    return address


def _int(environ: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    value = _optional_int(environ, name, minimum=minimum)
    return default if value is None else value


def _optional_int(environ: Mapping[str, str], name: str, *, minimum: int) -> int | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ChainSettingsError(name, f"must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ChainSettingsError(name, f"must be ≥ {minimum}, got {value}")
    return value


def _positive_float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ChainSettingsError(name, f"must be a number of seconds, got {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise ChainSettingsError(name, f"must be a positive number of seconds, got {raw!r}")
    return value
