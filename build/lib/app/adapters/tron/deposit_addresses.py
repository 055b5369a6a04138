"""Deposit addresses: one per invoice, derived from the platform's account xpub, never reused.

The online platform holds only the account-level extended *public* key (BIP44 m/44'/195'/0');
address ``i`` is m/44'/195'/0'/0/i. The private keys stay with whoever holds the seed offline, so
nothing here can spend. Indices come from a PostgreSQL sequence: sequences are not transactional,
so an index handed out once is never handed out again, even when the transaction that took it
rolls back (a gap is harmless; a reused address would mix two invoices' money).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from bip_utils import Bip44, Bip44Changes, Bip44Coins, Bip44Levels

from app.adapters.tron.errors import InvalidXpub

# BIP32 non-hardened child indices: 0 ≤ i < 2^31.
MAX_ADDRESS_INDEX = 2**31 - 1


@dataclass(frozen=True)
class DepositAddress:
    index: int
    address: str


@lru_cache(maxsize=8)
def _external_chain(xpub: str) -> Any:
    """The m/44'/195'/0'/0 node of an account xpub (cached: re-parsing costs more than deriving)."""
    try:
        account = Bip44.FromExtendedKey(xpub, Bip44Coins.TRON)
    except Exception as exc:  # bip_utils raises several unrelated types for a malformed key
        raise InvalidXpub(f"not a valid extended key: {type(exc).__name__}") from None
    if not account.IsPublicOnly():
        # Refuse loudly: a private extended key must never reach the online platform.
        raise InvalidXpub("an extended PRIVATE key was given; the platform takes only the xpub")
    if account.Level() != Bip44Levels.ACCOUNT:
        raise InvalidXpub(
            f"the xpub must be the account key m/44'/195'/0' (depth 3), got depth {account.Level()}"
        )
    return account.Change(Bip44Changes.CHAIN_EXT)


def validate_account_xpub(xpub: str) -> None:
    """Raise InvalidXpub unless ``xpub`` is an account-level extended public key."""
    _external_chain(xpub)


def xpub_fingerprint(xpub: str) -> str:
    """The BIP32 fingerprint (8 hex) of the account key: tells which xpub an index belongs to."""
    validate_account_xpub(xpub)
    account = Bip44.FromExtendedKey(xpub, Bip44Coins.TRON)
    return str(account.Bip32Object().FingerPrint().ToHex())


def derive_deposit_address(xpub: str, index: int) -> str:
    """The base58check address m/44'/195'/0'/0/index of the account ``xpub``."""
    if not 0 <= index <= MAX_ADDRESS_INDEX:
        raise ValueError(f"address index must be in [0, {MAX_ADDRESS_INDEX}], got {index}")
    return str(_external_chain(xpub).AddressIndex(index).PublicKey().ToAddress())
