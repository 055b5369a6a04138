"""Webhook signing secrets, encrypted at rest with AES-256-GCM.

We must know each endpoint's secret in clear to sign with it, so it cannot be hashed like an API
key; it is encrypted instead, so a database dump or a read-model replica does not hand out the
power to forge webhooks. The keys live only in the ``WEBHOOK_SECRET_KEYS`` setting:

    WEBHOOK_SECRET_KEYS="k20250301:<base64 of 32 bytes>,k20240901:<base64 of 32 bytes>"

The first key encrypts; every key decrypts. To rotate: put a new key first (``python -m
app.adapters.webhooks.secrets`` prints one), deploy, re-encrypt the stored secrets at leisure, then
drop the old key. The ``associated_data`` binds a ciphertext to its row (the endpoint id): copying
one endpoint's ciphertext onto another makes decryption fail instead of signing with the wrong
secret.

A ``SecretDecryptionError`` names the key id and never the secret. Operators: an unknown key id
means a key was removed from ``WEBHOOK_SECRET_KEYS`` while secrets still use it (put it back); an
authentication failure means the key with that id is not the one that encrypted (a key id reused
for a new key) or the stored row was altered.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - a prefix, not a secret
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
"""96-bit random nonces: the GCM standard size; safe for far more secrets than we will ever hold."""

_KEY_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class SecretDecryptionError(Exception):
    """A stored signing secret cannot be decrypted with the configured keys."""

    def __init__(self, message: str, *, key_id: str) -> None:
        super().__init__(message)
        self.key_id = key_id


def new_signing_secret() -> str:
    """A fresh endpoint signing secret: ``whsec_`` and 256 random bits, URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def generate_key() -> str:
    """A new 32-byte encryption key as standard base64 (44 characters), for the setting."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


@dataclass(frozen=True)
class EncryptedSecret:
    """A signing secret as stored: which key encrypted it, the nonce, and ciphertext + GCM tag."""

    key_id: str
    nonce: bytes
    ciphertext: bytes

    def __repr__(self) -> str:
        return (
            f"EncryptedSecret(key_id={self.key_id!r}, nonce=<{len(self.nonce)} bytes>, "
            f"ciphertext=<{len(self.ciphertext)} bytes>)"
        )

    def to_text(self) -> str:
        """``<key id>:<nonce b64>:<ciphertext b64>``, for storing it in a single column."""
        nonce = base64.b64encode(self.nonce).decode("ascii")
        ciphertext = base64.b64encode(self.ciphertext).decode("ascii")
        return f"{self.key_id}:{nonce}:{ciphertext}"

    @classmethod
    def from_text(cls, text: str) -> EncryptedSecret:
        """The inverse of ``to_text``; ``ValueError`` when the text is not in that form."""
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError("an encrypted secret is <key id>:<nonce>:<ciphertext>")
        key_id, nonce, ciphertext = parts
        return cls(
            key_id=key_id,
            nonce=_b64decode(nonce, what=f"nonce of key {key_id!r}"),
            ciphertext=_b64decode(ciphertext, what=f"ciphertext of key {key_id!r}"),
        )


class SecretKeyring:
    """The encryption keys by id: the first encrypts, any of them decrypts."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        for key_id, key in keys.items():
            if len(key) != KEY_BYTES:
                raise ValueError(
                    f"webhook secret key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}"
                )
        self._keys: Mapping[str, bytes] = dict(keys)

    def __repr__(self) -> str:
        return f"SecretKeyring(current_key_id={self.current_key_id!r}, key_ids={self.key_ids!r})"

    @property
    def current_key_id(self) -> str:
        """The key that encrypts new secrets: the first one given."""
        return next(iter(self._keys))

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    @classmethod
    def parse(cls, text: str) -> SecretKeyring:
        """A keyring from ``"kid1:<base64 key>,kid2:<base64 key>"``; the first key is current.

        Raises ``ValueError`` naming the problem (and the key id, never the key): nothing given,
        an item without ``:``, a bad key id, a key that is not base64 of exactly 32 bytes, or a
        key id given twice.
        """
        if not text.strip():
            raise ValueError("no webhook secret keys: give kid:<base64 of 32 bytes>[,kid:…]")
        keys: dict[str, bytes] = {}
        for position, item in enumerate(text.split(","), start=1):
            key_id, separator, encoded = item.strip().partition(":")
            if not separator:
                raise ValueError(f"webhook secret key {position} is not <key id>:<base64 key>")
            if not _KEY_ID.fullmatch(key_id):
                raise ValueError(
                    f"webhook secret key {position}: key id {key_id!r} must be 1-64 letters, "
                    "digits, '_', '.' or '-', starting with a letter or digit"
                )
            if key_id in keys:
                raise ValueError(f"webhook secret key id {key_id!r} is given twice")
            keys[key_id] = _b64decode(encoded.strip(), what=f"webhook secret key {key_id!r}")
        return cls(keys)

    def encrypt(self, plaintext: str, *, associated_data: bytes) -> EncryptedSecret:
        """``plaintext`` encrypted with the current key under a fresh random nonce."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        aead = AESGCM(self._keys[self.current_key_id])
        ciphertext = aead.encrypt(nonce, plaintext.encode(), associated_data)
        return EncryptedSecret(key_id=self.current_key_id, nonce=nonce, ciphertext=ciphertext)

    def decrypt(self, encrypted: EncryptedSecret, *, associated_data: bytes) -> str:
        """The plaintext, or ``SecretDecryptionError`` naming the key id (unknown key, bad tag)."""
        key = self._keys.get(encrypted.key_id)
        if key is None:
            raise SecretDecryptionError(
                f"webhook secret encrypted with key {encrypted.key_id!r}, which is not in "
                f"WEBHOOK_SECRET_KEYS (configured: {', '.join(self._keys)})",
                key_id=encrypted.key_id,
            )
        try:
            plaintext = AESGCM(key).decrypt(encrypted.nonce, encrypted.ciphertext, associated_data)
        except (InvalidTag, ValueError):
            # ValueError: a nonce of the wrong length, i.e. a damaged row.
            raise SecretDecryptionError(
                f"webhook secret does not decrypt with key {encrypted.key_id!r}: the key is not "
                "the one that encrypted it, or the stored secret or its endpoint id was altered",
                key_id=encrypted.key_id,
            ) from None
        return plaintext.decode()

    def needs_reencryption(self, encrypted: EncryptedSecret) -> bool:
        """Whether ``encrypted`` uses an older key: re-encrypt it before that key is dropped."""
        return encrypted.key_id != self.current_key_id


def _b64decode(text: str, *, what: str) -> bytes:
    """Standard or URL-safe base64, strictly: stray characters are an error, not skipped."""
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64") from None


def main() -> None:
    """Print a new ``WEBHOOK_SECRET_KEYS`` entry: put it first to make it the current key."""
    key_id = f"k{dt.datetime.now(dt.UTC):%Y%m%d}"
    print(f"{key_id}:{generate_key()}")


if __name__ == "__main__":  # pragma: no cover - the tests call main()
    main()
