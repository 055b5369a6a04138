"""Addresses, hashes and ABI words as java-tron writes them.

A Tron address is 21 bytes: 0x41 followed by the 20-byte EVM address. java-tron prints it as
`41…` hex, or as base58check (`T…`) when a request says `visible: true`.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal, InvalidOperation
from functools import lru_cache

import base58
from Crypto.Hash import keccak

from tron_sim.errors import BadAddress, BadAmount

ADDRESS_PREFIX = 0x41
WORD = 32


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def keccak256(data: bytes) -> bytes:
    return keccak.new(data=data, digest_bits=256).digest()


@lru_cache(maxsize=65536)
def base58check(raw: bytes) -> str:
    """base58check of any bytes, like java-tron's `encode58Check` (no 41 prefix added)."""
    return base58.b58encode_check(raw).decode()


@lru_cache(maxsize=65536)
def _decode_base58(text: str) -> bytes:
    try:
        raw = base58.b58decode_check(text)
    except ValueError:
        raise BadAddress(f"bad base58check address {text!r}") from None
    if len(raw) != 21 or raw[0] != ADDRESS_PREFIX:
        raise BadAddress(f"not a Tron address {text!r}")
    return raw


def parse_address(text: object) -> bytes:
    """21-byte address from `T…` base58check, `41…` hex or `0x…` 20-byte hex."""
    if not isinstance(text, str) or not text:
        raise BadAddress(f"address must be a non-empty string, got {text!r}")
    if text[0] == "T" and len(text) == 34:
        return _decode_base58(text)
    hex_text = text[2:] if text.startswith("0x") else text
    try:
        raw = bytes.fromhex(hex_text)
    except ValueError:
        raise BadAddress(f"bad address {text!r}") from None
    if len(raw) == 20:
        return bytes([ADDRESS_PREFIX]) + raw
    if len(raw) == 21 and raw[0] == ADDRESS_PREFIX:
        return raw
    raise BadAddress(f"bad address {text!r}")


def to_base58(raw21: bytes) -> str:
    return base58check(raw21)


def show_address(raw21: bytes, visible: bool) -> str:
    """An address field as java-tron prints it: `T…` when visible, else `41…` hex."""
    return base58check(raw21) if visible else raw21.hex()


def address_word(raw21: bytes) -> str:
    """An address as a 32-byte ABI word / log topic: 12 zero bytes and the 20 bytes, no 41."""
    return "000000000000000000000000" + raw21[1:].hex()


def uint_word(value: int) -> str:
    return format(value, "064x")


def word_to_address(word: bytes) -> bytes:
    return bytes([ADDRESS_PREFIX]) + word[12:32]


def public_key_to_address(public_key64: bytes) -> bytes:
    return bytes([ADDRESS_PREFIX]) + keccak256(public_key64)[-20:]


def selector(signature: str) -> bytes:
    return keccak256(signature.encode())[:4]


def abi_string(text: str) -> str:
    """ABI encoding of a single `string` return value."""
    data = text.encode()
    padded = data + b"\0" * (-len(data) % WORD)
    return uint_word(WORD) + uint_word(len(data)) + padded.hex()


def parse_decimal_amount(value: object, decimals: int, field: str) -> int:
    """A decimal string such as "9.99" as an integer of base units (never a float)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadAmount(field, 'must be a decimal string such as "9.99"')
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise BadAmount(field, f"is not a decimal number: {value!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise BadAmount(field, "must be greater than 0")
    scaled = amount.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise BadAmount(field, f"has more than {decimals} decimal places")
    return int(scaled)


def format_amount(units: int, decimals: int) -> str:
    """Base units as a plain decimal string ("9.99", "10")."""
    text = format(Decimal(units).scaleb(-decimals), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
