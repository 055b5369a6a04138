"""Merchant users' passwords: argon2id hashes, a small policy, and hashing off the event loop.

A password is stored only as an argon2id hash (the encoded form ``$argon2id$v=19$m=…,t=…,p=…$
<salt>$<hash>``, which carries its own salt and parameters). argon2id is memory-hard: a stolen
table cannot be brute-forced on GPUs at the speed a plain or salted SHA-256 allows.

The parameters are OWASP's first recommendation for argon2id (the Password Storage Cheat Sheet):
19 MiB of memory, 2 passes, 1 lane. They suit our 2-core workers: one lane keeps each hash on
one core (more lanes would make one sign-in faster by taking every core at once), and 19 MiB per
hash in flight stays small next to a worker's RocksDB tables. One hash took 25-45 ms (median
33 ms) on the 2-core AMD EPYC machine this module was written on; time ``hash_password`` on yours.
Raising any parameter later is safe: ``needs_rehash`` says which stored hashes are older, and the
login path rehashes them while it holds the password in clear.

Passwords are normalised to Unicode NFKC before hashing (NIST SP 800-63B §5.1.1.2), so the same
password typed on keyboards or systems that compose accents differently still matches. This must
stay the same forever: changing it would lock out users whose passwords it affects.

Hashing is CPU-bound and holds the calling thread for its whole duration; the ``*_async``
variants run it in a thread (argon2-cffi releases the GIL) so a login never stalls the worker's
event loop, its Kafka heartbeats and its other requests. The threads are two of their own, which
bounds how many hashes run at once, and so their memory (2 × 19 MiB); a burst of sign-ins queues
there, and the failed-sign-in limits (app/services/users.py) bound the burst.

When the email given at sign-in matches no user, verify the password against ``DUMMY_HASH`` anyway
and then refuse: an unknown email then costs the same time as a wrong password, so response times
do not tell an attacker which emails have accounts.
"""

from __future__ import annotations

import asyncio
import secrets
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from argon2 import PasswordHasher, Type
from argon2.exceptions import Argon2Error

from app.domain.errors import CheckoutError

TIME_COST: Final = 2
"""Passes over the memory (OWASP: t=2 with 19 MiB)."""
MEMORY_COST_KIB: Final = 19_456
"""19 MiB, in KiB as argon2 counts it (OWASP's minimum for argon2id)."""
PARALLELISM: Final = 1
"""One lane: a single hash occupies one core, never every core at once."""
HASH_LEN: Final = 32
SALT_LEN: Final = 16

MIN_PASSWORD_LENGTH: Final = 12
MAX_PASSWORD_LENGTH: Final = 128
"""Characters, after NFKC. Bounds what a hostile sign-in request can make us hash."""

_HASHER: Final = PasswordHasher(
    time_cost=TIME_COST,
    memory_cost=MEMORY_COST_KIB,
    parallelism=PARALLELISM,
    hash_len=HASH_LEN,
    salt_len=SALT_LEN,
    type=Type.ID,  # argon2-cffi's default, pinned so a change of default cannot weaken us
)


class WeakPassword(CheckoutError, ValueError):
    """A password refused by the policy; the message says why and can be shown to the user."""

    code = "password_too_weak"

    def __init__(self, message: str) -> None:
        super().__init__(message, param="password")


def check_password_policy(password: str) -> None:
    """Refuse, with ``WeakPassword``, a password a user may not choose.

    The rules are few on purpose (NIST SP 800-63B: length matters, composition rules do not):
    12 to 128 characters; no control characters (they cannot be typed reliably and are often an
    encoding accident); not one character repeated. Run it when a password is chosen or changed,
    never at sign-in, so tightening it later does not lock anyone out.
    """
    normalised = _normalise(password)
    if len(normalised) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password must be at least {MIN_PASSWORD_LENGTH} characters long")
    _encode(password)  # too long, or not valid Unicode: what hash_password itself refuses
    if any(unicodedata.category(char) == "Cc" for char in normalised):
        raise WeakPassword("a password must not contain control characters")
    if len(set(normalised)) == 1:
        raise WeakPassword("a password must not be a single character repeated")


def hash_password(password: str) -> str:
    """The encoded argon2id hash of ``password``, with a fresh random salt.

    Refuses (``WeakPassword``) only what cannot or must not be hashed: more than
    ``MAX_PASSWORD_LENGTH`` characters, or text that is not valid Unicode. The rest of the policy
    is ``check_password_policy``'s, for the caller to apply where a password is chosen.
    """
    return _HASHER.hash(_encode(password))


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches the ``stored`` hash.

    False, never an exception, on a mismatch, on a malformed or unreadable stored hash, and on a
    password that could never have been stored (too long, not valid Unicode): sign-in answers
    "wrong email or password" for all of them.
    """
    try:
        encoded = _encode(password)
    except WeakPassword:
        # Faster than a real check, but the same for known and unknown emails: it says nothing
        # about who has an account.
        return False
    try:
        return _HASHER.verify(stored, encoded)
    except (Argon2Error, ValueError):
        # Argon2Error: a mismatch (VerifyMismatchError) or a hash argon2 cannot use;
        # ValueError: InvalidHashError, and a stored value that is not even ASCII.
        return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with other parameters (or type) than ours.

    Call it after a successful ``verify_password`` and, if true, store ``hash_password`` of the
    password just verified. A malformed stored hash also needs replacing: true.
    """
    try:
        return _HASHER.check_needs_rehash(stored)
    except ValueError:  # InvalidHashError, or not ASCII
        return True


# Hashes run on threads of their own: two (one per core), so a burst of sign-ins queues here, in
# bounded memory (2 × 19 MiB), and never takes the threads the event loop lends to DNS lookups.
_HASHING: Final = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


async def hash_password_async(password: str) -> str:
    """``hash_password`` in a thread, so the event loop keeps serving while argon2 works."""
    return await asyncio.get_running_loop().run_in_executor(_HASHING, hash_password, password)


async def verify_password_async(stored: str, password: str) -> bool:
    """``verify_password`` in a thread, so the event loop keeps serving while argon2 works."""
    return await asyncio.get_running_loop().run_in_executor(
        _HASHING, verify_password, stored, password
    )


def _normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def _encode(password: str) -> bytes:
    """The bytes argon2 hashes: NFKC, bounded in length, UTF-8."""
    normalised = _normalise(password)
    if len(normalised) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"a password must be at most {MAX_PASSWORD_LENGTH} characters long")
    try:
        return normalised.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: not text a user could have typed
        raise WeakPassword("a password must be valid Unicode text") from None


DUMMY_HASH: Final = hash_password(secrets.token_urlsafe(32))
"""A real argon2id hash of a random password nobody knows, made at import with our parameters.

Verify against it when no user has the given email, so that path costs what a wrong password
costs. It is made with the same parameters as real hashes precisely so the timing matches.
"""


class Argon2Passwords:
    """The ``PasswordHashing`` port (app/services/ports.py) over this module."""

    dummy_hash: str = DUMMY_HASH

    def check_policy(self, password: str) -> None:
        check_password_policy(password)

    async def hash(self, password: str) -> str:
        return await hash_password_async(password)

    async def verify(self, stored: str, password: str) -> bool:
        return await verify_password_async(stored, password)

    def needs_rehash(self, stored: str) -> bool:
        return needs_rehash(stored)
