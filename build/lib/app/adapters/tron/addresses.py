"""Tron address forms: base58check ``T…`` (stored and published) and the other forms nodes return.

java-tron shows an address as base58check ``T…`` with ``visible=true`` and as 21-byte hex with the
``41`` prefix otherwise; inside EVM data (log topics, calldata) it is the bare 20-byte account id.
A receipt's ``log[].address`` is those 20 bytes: hex without ``41`` when not visible, and with
``visible=true`` the base58check of the 20 bytes *without* ``41`` — a string that is not the
contract's ``T…`` address (java-tron behaviour, tronprotocol/wallet-cli issue 470).
"""

from __future__ import annotations

import string
from functools import lru_cache

import base58

TRON_ADDRESS_PREFIX = b"\x41"
_HEX_DIGITS = frozenset(string.hexdigits)


def to_base58(address: str) -> str:
    """Any address form → base58check ``T…``; ValueError if it is not an address."""
    return base58.b58encode_check(TRON_ADDRESS_PREFIX + account_id(address)).decode("ascii")


@lru_cache(maxsize=4096)
def account_id(address: str) -> bytes:
    """The 20-byte account id of an address in any form: ``T…``, ``41…`` hex, 20-byte hex,
    ``0x…``, or the base58check of the 20 bytes (a visible log address)."""
    text = address.strip().removeprefix("0x")
    if len(text) in (40, 42) and _HEX_DIGITS.issuperset(text):
        raw = bytes.fromhex(text)
    else:
        try:
            raw = base58.b58decode_check(text)
        except ValueError:
            raise ValueError(f"not a Tron address: {address!r}") from None
    if len(raw) == 21 and raw[:1] == TRON_ADDRESS_PREFIX:
        return raw[1:]
    if len(raw) == 20:
        return raw
    raise ValueError(f"not a Tron address: {address!r}")


@lru_cache(maxsize=65536)  # base58 is pure Python; payers and deposit addresses recur
def from_word(word: str) -> str:
    """A 32-byte ABI word holding an address (12 zero bytes + 20 bytes, no ``41``) → base58check."""
    text = word.removeprefix("0x")
    if len(text) != 64:
        raise ValueError(f"an ABI address word is 32 bytes, got {len(text) // 2}")
    return base58.b58encode_check(TRON_ADDRESS_PREFIX + bytes.fromhex(text[24:])).decode("ascii")
