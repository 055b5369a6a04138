from __future__ import annotations

import asyncio
import contextlib
import threading
import unicodedata

import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from app.adapters.auth.passwords import (
    DUMMY_HASH,
    MAX_PASSWORD_LENGTH,
    MEMORY_COST_KIB,
    PARALLELISM,
    TIME_COST,
    WeakPassword,
    check_password_policy,
    hash_password,
    hash_password_async,
    needs_rehash,
    verify_password,
    verify_password_async,
)

pytestmark = pytest.mark.unit

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def stored() -> str:
    # One hash for the module: each costs tens of milliseconds.
    return hash_password(PASSWORD)


def test_a_hash_verifies_with_its_password(stored: str) -> None:
    assert verify_password(stored, PASSWORD)


def test_a_wrong_password_does_not_verify(stored: str) -> None:
    assert not verify_password(stored, PASSWORD + "!")
    assert not verify_password(stored, "")


def test_hashes_are_salted() -> None:
    assert hash_password(PASSWORD) != hash_password(PASSWORD)


def test_the_hash_is_argon2id_with_the_documented_parameters(stored: str) -> None:
    assert stored.startswith(f"$argon2id$v=19$m={MEMORY_COST_KIB},t={TIME_COST},p={PARALLELISM}$")
    parameters = extract_parameters(stored)
    assert parameters.type is Type.ID
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (
        19_456,
        2,
        1,
    )
    assert (parameters.hash_len, parameters.salt_len) == (32, 16)


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "not a hash",
        "$argon2id$garbage",
        "$argon2id$v=19$m=0,t=0,p=0$abc$def",
        "$2b$12$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyzabcde",  # bcrypt
        "$argon2id$v=19$m=19456,t=2,p=1$é$é",  # not ASCII
    ],
)
def test_a_malformed_stored_hash_verifies_nothing_and_raises_nothing(malformed: str) -> None:
    assert not verify_password(malformed, PASSWORD)


def test_a_password_that_could_never_be_stored_does_not_verify(stored: str) -> None:
    assert not verify_password(stored, "x" * (MAX_PASSWORD_LENGTH + 1))
    assert not verify_password(stored, "lone surrogate \ud800 here")


def test_passwords_are_compared_after_nfkc_normalisation() -> None:
    composed = "café au lait 2024"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed

    assert verify_password(hash_password(composed), decomposed)


def test_a_fresh_hash_needs_no_rehash(stored: str) -> None:
    assert not needs_rehash(stored)


def test_a_hash_with_other_parameters_or_type_needs_a_rehash() -> None:
    weaker = PasswordHasher(time_cost=1, memory_cost=8_192, parallelism=1).hash(PASSWORD)
    argon2i = PasswordHasher(
        time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=PARALLELISM, type=Type.I
    ).hash(PASSWORD)

    assert needs_rehash(weaker)
    assert needs_rehash(argon2i)
    assert needs_rehash("not a hash")
    # Older hashes still verify, so the login path can rehash them.
    assert verify_password(weaker, PASSWORD)


def test_the_dummy_hash_is_a_real_argon2id_hash_that_matches_no_guess() -> None:
    assert DUMMY_HASH.startswith("$argon2id$")
    assert not needs_rehash(DUMMY_HASH)
    assert not verify_password(DUMMY_HASH, PASSWORD)


def test_a_good_password_passes_the_policy() -> None:
    check_password_policy(PASSWORD)
    check_password_policy("a" * 11 + "b")
    check_password_policy("x" * (MAX_PASSWORD_LENGTH - 1) + "y")
    check_password_policy("pâté en croûte 🥧")  # non-ASCII is welcome


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "at least 12 characters"),
        ("short pass1", "at least 12 characters"),
        ("x" * (MAX_PASSWORD_LENGTH + 1), "at most 128 characters"),
        ("tab\tinside password", "control characters"),
        ("newline in password\n", "control characters"),
        ("nul\x00 in a password", "control characters"),
        ("a" * 20, "single character repeated"),
        ("lone surrogate \ud800 here", "valid Unicode"),
    ],
)
def test_the_policy_refuses_with_a_clear_message(password: str, message: str) -> None:
    with pytest.raises(WeakPassword, match=message):
        check_password_policy(password)


def test_weak_password_is_a_value_error() -> None:
    assert issubclass(WeakPassword, ValueError)


def test_hashing_refuses_what_cannot_be_stored() -> None:
    with pytest.raises(WeakPassword, match="at most"):
        hash_password("x" * (MAX_PASSWORD_LENGTH + 1))
    with pytest.raises(WeakPassword, match="valid Unicode"):
        hash_password("\ud800" * 12)


async def test_the_async_variants_hash_and_verify_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.adapters.auth import passwords

    threads: list[threading.Thread] = []
    real_hash, real_verify = passwords.hash_password, passwords.verify_password

    def spying_hash(password: str) -> str:
        threads.append(threading.current_thread())
        return real_hash(password)

    def spying_verify(stored: str, password: str) -> bool:
        threads.append(threading.current_thread())
        return real_verify(stored, password)

    monkeypatch.setattr(passwords, "hash_password", spying_hash)
    monkeypatch.setattr(passwords, "verify_password", spying_verify)

    stored = await hash_password_async(PASSWORD)
    assert await verify_password_async(stored, PASSWORD)
    assert not await verify_password_async(stored, "wrong horse battery staple")

    assert len(threads) == 3
    assert all(thread is not threading.main_thread() for thread in threads)


async def test_the_event_loop_keeps_running_while_a_hash_is_computed() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        await hash_password_async(PASSWORD)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert ticks > 1
