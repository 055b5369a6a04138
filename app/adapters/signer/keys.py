"""The signer's keys, from files named by its settings (docs/money-out.md, "The signer").

- the hot wallet: ``SIGNER_HOT_WALLET_KEY_FILE``, a hex private key;
- the deposit account: ``SIGNER_DEPOSIT_XPRV_FILE``, the account xprv (m/44'/195'/0') whose xpub
  is ``TRON_XPUB``; deposit address *i*'s key is derived from it on demand.

On the ``sim`` network only, both may be left out: they come from the public BIP39 test mnemonic
("abandon" ×11 "about") the development xpub comes from — deposit account m/44'/195'/0', hot wallet
m/44'/195'/1'/0/0. Keys live in this process's memory only; nothing here logs or returns one.

A KMS or HSM replaces this class by implementing the same ``KeyStore`` methods
(app/services/signer.py): ``address(account)``, ``sign(account, digest)``, ``hot_wallet`` and
``deposit_addresses()``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Final

from bip_utils import Bip39SeedGenerator, Bip44, Bip44Changes, Bip44Coins, Bip44Levels
from tronpy.keys import PrivateKey

from app.services.signer import UnknownAccount

DEV_MNEMONIC: Final = (
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
)
HOT_WALLET: Final = "hot_wallet"
DEPOSIT_PREFIX: Final = "deposit:"
MAX_DEPOSIT_INDEX: Final = 2**31 - 1


class KeyFileError(Exception):
    """A key file that is missing, unreadable, or does not match the platform's xpub."""


def dev_keys() -> tuple[bytes, str]:
    """The hot wallet key and the deposit account xprv of the public development mnemonic."""
    seed = Bip39SeedGenerator(DEV_MNEMONIC).Generate()
    root = Bip44.FromSeed(seed, Bip44Coins.TRON)
    hot = root.Purpose().Coin().Account(1).Change(Bip44Changes.CHAIN_EXT).AddressIndex(0)
    deposit_account = root.Purpose().Coin().Account(0)
    return hot.PrivateKey().Raw().ToBytes(), deposit_account.PrivateKey().ToExtended()


def hot_wallet_address(key: bytes) -> str:
    return str(PrivateKey(key).public_key.to_base58check_address())


class FileKeys:
    """``KeyStore`` over a hot-wallet key and a deposit-account xprv held in memory."""

    def __init__(self, hot_wallet_key: bytes, deposit_xprv: str, *, expected_xpub: str) -> None:
        self._hot = PrivateKey(hot_wallet_key)
        account = Bip44.FromExtendedKey(deposit_xprv, Bip44Coins.TRON)
        if account.Level() != Bip44Levels.ACCOUNT or account.IsPublicOnly():
            raise KeyFileError("the deposit key is not an account-level xprv (m/44'/195'/0')")
        if account.PublicKey().ToExtended() != expected_xpub:
            raise KeyFileError("the deposit xprv does not belong to TRON_XPUB")
        self._deposits = account.Change(Bip44Changes.CHAIN_EXT)
        self._highest_index = -1

    @classmethod
    def from_files(
        cls, hot_wallet_key_file: Path, deposit_xprv_file: Path, *, expected_xpub: str
    ) -> FileKeys:
        try:
            hot = bytes.fromhex(hot_wallet_key_file.read_text(encoding="ascii").strip())
            xprv = deposit_xprv_file.read_text(encoding="ascii").strip()
        except (OSError, ValueError) as exc:
            # The message names the file, never its content.
            raise KeyFileError(f"cannot read a key file: {type(exc).__name__}") from None
        if len(hot) != 32:
            raise KeyFileError(f"{hot_wallet_key_file} does not hold a 32-byte hex private key")
        return cls(hot, xprv, expected_xpub=expected_xpub)

    @property
    def hot_wallet(self) -> str:
        return str(self._hot.public_key.to_base58check_address())

    def _deposit_index(self, account: str) -> int:
        text = account.removeprefix(DEPOSIT_PREFIX)
        if (
            not account.startswith(DEPOSIT_PREFIX)
            or not (text.isascii() and text.isdecimal())
            or int(text) > MAX_DEPOSIT_INDEX
        ):
            raise UnknownAccount(account)
        index = int(text)
        self._highest_index = max(self._highest_index, index)
        return index

    def _deposit_key(self, index: int) -> PrivateKey:
        return PrivateKey(self._deposits.AddressIndex(index).PrivateKey().Raw().ToBytes())

    def address(self, account: str) -> str:
        if account == HOT_WALLET:
            return self.hot_wallet
        return _deposit_address(self, self._deposit_index(account))

    def sign(self, account: str, digest: bytes) -> bytes:
        key = (
            self._hot if account == HOT_WALLET else self._deposit_key(self._deposit_index(account))
        )
        return bytes(key.sign_msg_hash(digest).to_bytes())

    def deposit_addresses(self) -> frozenset[str]:
        """Our deposit addresses up to a margin past the highest index asked to sign for: a
        payout or refund to any of them is refused (it would pay an invoice with our money)."""
        margin = 1000
        return frozenset(
            _deposit_address(self, index) for index in range(self._highest_index + 1 + margin)
        )


@lru_cache(maxsize=100_000)
def _deposit_address(keys: FileKeys, index: int) -> str:
    return str(keys._deposit_key(index).public_key.to_base58check_address())
