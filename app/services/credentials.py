"""Opaque credentials: API keys, refresh tokens, invitations. Shown once, stored as an HMAC.

Each is ``<prefix><id>_<secret>``: ``ck_`` API keys, ``rt_`` refresh tokens, ``inv_``
invitations. The id (16 hex characters) is the lookup prefix, so a check costs one indexed read;
the secret is 32 random bytes (43 URL-safe characters). The database holds only
``HMAC-SHA256(API_KEY_PEPPER, SHA-256(secret))``: without the pepper, which lives only in the
workers' environment, a copy of the table opens nothing. (The inner SHA-256 is what keys made
before the pepper stored; their HMAC is computed from it without knowing the secret.)
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Final

API_KEY: Final = "ck_"
REFRESH_TOKEN: Final = "rt_"  # noqa: S105 - a prefix, not a secret
INVITATION: Final = "inv_"
MIN_PEPPER_BYTES: Final = 32
MAX_CREDENTIAL_LENGTH: Final = 128

# Older API keys' secrets were 43 characters too, but read them generously: any URL-safe text.
_SHAPE: Final = re.compile(r"([a-z]+_)([0-9a-f]{16})_([A-Za-z0-9_-]{20,100})")


@dataclass(frozen=True)
class Credential:
    """A credential in clear, as given to its holder once."""

    prefix: str
    credential_id: str
    secret: str

    def __str__(self) -> str:
        return f"{self.prefix}{self.credential_id}_{self.secret}"


def new_credential(prefix: str) -> Credential:
    return Credential(prefix, secrets.token_hex(8), secrets.token_urlsafe(32))


def parse_credential(prefix: str, text: str) -> Credential | None:
    """The parts of a well-formed credential of kind ``prefix``; None for anything else."""
    if len(text) > MAX_CREDENTIAL_LENGTH:
        return None
    match = _SHAPE.fullmatch(text)
    if match is None or match[1] != prefix:
        return None
    return Credential(prefix, match[2], match[3])


def legacy_digest(secret: str) -> bytes:
    """SHA-256 of the secret: what API keys made before the pepper stored."""
    return hashlib.sha256(secret.encode()).digest()


class SecretDigests:
    """HMACs of credential secrets under the pepper; ``matches`` compares in constant time."""

    def __init__(self, pepper: str | bytes) -> None:
        key = pepper.encode() if isinstance(pepper, str) else pepper
        if len(key) < MIN_PEPPER_BYTES:
            raise ValueError(f"the pepper needs at least {MIN_PEPPER_BYTES} bytes")
        self._key = key

    def __repr__(self) -> str:
        return "SecretDigests(<pepper>)"

    def of_legacy(self, sha256: bytes) -> bytes:
        return hmac.new(self._key, sha256, hashlib.sha256).digest()

    def of(self, secret: str) -> bytes:
        return self.of_legacy(legacy_digest(secret))

    def matches(self, secret: str, stored: bytes | None) -> bool:
        if stored is None:
            return False
        return hmac.compare_digest(self.of(secret), bytes(stored))
