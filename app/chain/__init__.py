"""The Tron side of crypto-checkout: node client, chain watcher, deposit addresses, settings.

See docs/chain.md for the operator's view.
"""

from app.chain.deposit_addresses import (
    DepositAddress,
    DepositAddressAllocator,
    derive_deposit_address,
    xpub_fingerprint,
)
from app.chain.errors import (
    ChainError,
    ChainSettingsError,
    CursorConflict,
    InvalidXpub,
    NodeUnavailable,
    ReorgBeyondWindow,
    TokenContractMismatch,
)
from app.chain.node import NodeHead, RetryPolicy, TronNode
from app.chain.settings import ChainSettings
from app.chain.store import MemoryWatcherStore, PostgresWatcherStore, StoredBlock, WatcherStore
from app.chain.watcher import ChainNode, ChainWatcher, Publish

__all__ = [
    "ChainError",
    "ChainNode",
    "ChainSettings",
    "ChainSettingsError",
    "ChainWatcher",
    "CursorConflict",
    "DepositAddress",
    "DepositAddressAllocator",
    "InvalidXpub",
    "MemoryWatcherStore",
    "NodeHead",
    "NodeUnavailable",
    "PostgresWatcherStore",
    "Publish",
    "ReorgBeyondWindow",
    "RetryPolicy",
    "StoredBlock",
    "TokenContractMismatch",
    "TronNode",
    "WatcherStore",
    "derive_deposit_address",
    "xpub_fingerprint",
]
