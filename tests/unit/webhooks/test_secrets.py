from __future__ import annotations

import base64
import dataclasses
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.adapters.webhooks.secrets import (
    KEY_BYTES,
    NONCE_BYTES,
    EncryptedSecret,
    SecretDecryptionError,
    SecretKeyring,
    generate_key,
    main,
    new_signing_secret,
)

pytestmark = pytest.mark.unit

KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(32, 64))).decode()
ENDPOINT = b"we_1"
SECRET = "whsec_the_plaintext_secret_value"


def keyring(text: str = f"ka:{KEY_A}") -> SecretKeyring:
    return SecretKeyring.parse(text)


def test_new_signing_secrets_are_prefixed_random_and_long() -> None:
    secrets = {new_signing_secret() for _ in range(100)}

    assert len(secrets) == 100
    for secret in secrets:
        assert re.fullmatch(r"whsec_[A-Za-z0-9_-]{43}", secret)


def test_a_secret_round_trips_under_the_current_key_with_a_fresh_nonce() -> None:
    ring = keyring()

    first = ring.encrypt(SECRET, associated_data=ENDPOINT)
    second = ring.encrypt(SECRET, associated_data=ENDPOINT)

    assert first.key_id == "ka"
    assert len(first.nonce) == NONCE_BYTES
    assert first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext
    assert SECRET.encode() not in first.ciphertext
    assert ring.decrypt(first, associated_data=ENDPOINT) == SECRET
    assert ring.decrypt(second, associated_data=ENDPOINT) == SECRET


@given(plaintext=st.text(max_size=200), associated_data=st.binary(max_size=64))
def test_any_text_round_trips(plaintext: str, associated_data: bytes) -> None:
    ring = keyring()

    encrypted = ring.encrypt(plaintext, associated_data=associated_data)

    assert ring.decrypt(encrypted, associated_data=associated_data) == plaintext


def test_a_secret_from_another_endpoint_row_does_not_decrypt() -> None:
    ring = keyring()
    encrypted = ring.encrypt(SECRET, associated_data=ENDPOINT)

    with pytest.raises(SecretDecryptionError, match="key 'ka'") as caught:
        ring.decrypt(encrypted, associated_data=b"we_2")

    assert caught.value.key_id == "ka"
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("part", ["nonce", "ciphertext"])
def test_a_tampered_secret_does_not_decrypt(part: str) -> None:
    ring = keyring()
    encrypted = ring.encrypt(SECRET, associated_data=ENDPOINT)
    value = getattr(encrypted, part)
    tampered = dataclasses.replace(encrypted, **{part: bytes([value[0] ^ 1]) + value[1:]})

    with pytest.raises(SecretDecryptionError, match="altered"):
        ring.decrypt(tampered, associated_data=ENDPOINT)


@pytest.mark.parametrize("nonce", [b"", b"short"])
def test_a_damaged_nonce_is_a_decryption_error(nonce: bytes) -> None:
    ring = keyring()
    encrypted = dataclasses.replace(ring.encrypt(SECRET, associated_data=ENDPOINT), nonce=nonce)

    with pytest.raises(SecretDecryptionError):
        ring.decrypt(encrypted, associated_data=ENDPOINT)


def test_an_unknown_key_id_is_named() -> None:
    encrypted = keyring(f"kold:{KEY_A}").encrypt(SECRET, associated_data=ENDPOINT)

    with pytest.raises(SecretDecryptionError, match="'kold', which is not in") as caught:
        keyring(f"knew:{KEY_B}").decrypt(encrypted, associated_data=ENDPOINT)

    assert caught.value.key_id == "kold"


def test_a_reused_key_id_with_another_key_does_not_decrypt() -> None:
    encrypted = keyring(f"k1:{KEY_A}").encrypt(SECRET, associated_data=ENDPOINT)

    with pytest.raises(SecretDecryptionError, match="not the one that encrypted"):
        keyring(f"k1:{KEY_B}").decrypt(encrypted, associated_data=ENDPOINT)


def test_after_key_rotation_old_secrets_decrypt_and_new_ones_use_the_new_key() -> None:
    before = keyring(f"k2024:{KEY_A}")
    old = before.encrypt(SECRET, associated_data=ENDPOINT)

    after = keyring(f"k2025:{KEY_B},k2024:{KEY_A}")
    new = after.encrypt(SECRET, associated_data=ENDPOINT)

    assert after.current_key_id == "k2025"
    assert after.key_ids == ("k2025", "k2024")
    assert new.key_id == "k2025"
    assert after.decrypt(old, associated_data=ENDPOINT) == SECRET
    assert after.decrypt(new, associated_data=ENDPOINT) == SECRET
    assert after.needs_reencryption(old)
    assert not after.needs_reencryption(new)
    with pytest.raises(SecretDecryptionError):
        before.decrypt(new, associated_data=ENDPOINT)


def test_nothing_shows_the_secret_or_the_keys() -> None:
    ring = keyring(f"ka:{KEY_A},kb:{KEY_B}")
    encrypted = ring.encrypt(SECRET, associated_data=ENDPOINT)

    shown = f"{ring!r} {ring} {encrypted!r} {encrypted}"

    assert repr(ring) == "SecretKeyring(current_key_id='ka', key_ids=('ka', 'kb'))"
    assert repr(encrypted) == (
        f"EncryptedSecret(key_id='ka', nonce=<12 bytes>, ciphertext=<{len(SECRET) + 16} bytes>)"
    )
    for leak in (KEY_A, KEY_B, SECRET, encrypted.ciphertext.hex(), str(encrypted.ciphertext)):
        assert leak not in shown


def test_an_encrypted_secret_round_trips_through_its_text_form() -> None:
    ring = keyring()
    encrypted = ring.encrypt(SECRET, associated_data=ENDPOINT)

    restored = EncryptedSecret.from_text(encrypted.to_text())

    assert restored == encrypted
    assert ring.decrypt(restored, associated_data=ENDPOINT) == SECRET


@pytest.mark.parametrize(
    ("text", "message"),
    [("ka:abc", "is <key id>:<nonce>:<ciphertext>"), ("ka:!!!:AAAA", "nonce of key 'ka'")],
)
def test_a_bad_text_form_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EncryptedSecret.from_text(text)


# --- keyring text -------------------------------------------------------------------------------


def test_keys_may_be_standard_or_url_safe_base64_with_spaces_around_items() -> None:
    url_safe = base64.urlsafe_b64encode(bytes([251] * 32)).decode()
    assert "-" in url_safe or "_" in url_safe

    ring = SecretKeyring.parse(f" ka:{KEY_A} , kb:{url_safe} ")

    assert ring.key_ids == ("ka", "kb")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no webhook secret keys"),
        ("   ", "no webhook secret keys"),
        (KEY_A, "key 1 is not <key id>:<base64 key>"),
        (f"ka:{KEY_A},", "key 2 is not <key id>:<base64 key>"),
        (f":{KEY_A}", "key id '' must be"),
        (f"k a:{KEY_A}", "key id 'k a' must be"),
        (f"-k:{KEY_A}", "key id '-k' must be"),
        (f"{'k' * 65}:{KEY_A}", "must be 1-64"),
        ("ka:not base64!", "key 'ka' is not valid base64"),
        ("ka:AAAA=AAA", "key 'ka' is not valid base64"),
        (f"ka:{base64.b64encode(bytes(16)).decode()}", "'ka' is 16 bytes; AES-256 needs 32"),
        (f"ka:{base64.b64encode(bytes(33)).decode()}", "'ka' is 33 bytes"),
        (f"ka:{KEY_A},kb:{KEY_B},ka:{KEY_B}", "'ka' is given twice"),
    ],
)
def test_a_bad_keyring_is_refused_naming_the_problem_but_never_the_key(
    text: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        SecretKeyring.parse(text)

    assert KEY_A not in str(caught.value)


def test_a_keyring_needs_keys_of_the_right_size() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        SecretKeyring({})
    with pytest.raises(ValueError, match="'k' is 31 bytes"):
        SecretKeyring({"k": bytes(31)})


def test_generated_keys_parse_and_differ() -> None:
    keys = {generate_key() for _ in range(20)}

    assert len(keys) == 20
    for key in keys:
        assert len(base64.b64decode(key, validate=True)) == KEY_BYTES
        SecretKeyring.parse(f"k:{key}")


def test_operators_get_a_dated_keyring_entry_from_the_module(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main()  # what `python -m app.adapters.webhooks.secrets` runs

    entry = capsys.readouterr().out.strip()
    assert re.fullmatch(r"k20\d{6}:[A-Za-z0-9+/]{43}=", entry)
    assert SecretKeyring.parse(entry).current_key_id == entry.split(":")[0]
