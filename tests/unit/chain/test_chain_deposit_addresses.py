from __future__ import annotations

import pytest
from bip_utils import Bip39SeedGenerator, Bip44, Bip44Changes, Bip44Coins
from hypothesis import given, settings
from hypothesis import strategies as st

from app.adapters.tron.deposit_addresses import (
    MAX_ADDRESS_INDEX,
    derive_deposit_address,
    validate_account_xpub,
    xpub_fingerprint,
)
from app.adapters.tron.errors import InvalidXpub
from app.adapters.tron.settings import DEV_XPUB

pytestmark = pytest.mark.unit

TEST_MNEMONIC = " ".join(["abandon"] * 11 + ["about"])
VECTORS = [
    (0, "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"),
    (1, "TSeJkUh4Qv67VNFwY8LaAxERygNdy6NQZK"),
    (2, "TYJPRrdB5APNeRs4R7fYZSwW3TcrTKw2gx"),
]


def account_of_test_mnemonic() -> Bip44:
    seed = Bip39SeedGenerator(TEST_MNEMONIC).Generate()
    return Bip44.FromSeed(seed, Bip44Coins.TRON).Purpose().Coin().Account(0)


@pytest.mark.parametrize(("index", "address"), VECTORS)
def test_the_test_vectors_derive_from_the_account_xpub(index: int, address: str) -> None:
    xpub = account_of_test_mnemonic().PublicKey().ToExtended()

    assert derive_deposit_address(xpub, index) == address


def test_the_dev_xpub_is_the_test_mnemonics_account_xpub() -> None:
    assert account_of_test_mnemonic().PublicKey().ToExtended() == DEV_XPUB


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=MAX_ADDRESS_INDEX))
def test_the_xpub_gives_the_address_of_the_private_key_at_the_same_path(index: int) -> None:
    # What the offline signer will derive from the seed must be what we hand to the customer.
    private = account_of_test_mnemonic().Change(Bip44Changes.CHAIN_EXT).AddressIndex(index)

    assert derive_deposit_address(DEV_XPUB, index) == private.PublicKey().ToAddress()


@pytest.mark.parametrize("index", [-1, MAX_ADDRESS_INDEX + 1])
def test_hardened_or_negative_indices_are_refused(index: int) -> None:
    with pytest.raises(ValueError, match="index"):
        derive_deposit_address(DEV_XPUB, index)


def test_a_private_extended_key_is_refused() -> None:
    xprv = account_of_test_mnemonic().PrivateKey().ToExtended()

    with pytest.raises(InvalidXpub, match="PRIVATE"):
        validate_account_xpub(xprv)


def test_an_xpub_at_another_depth_is_refused() -> None:
    change_level = account_of_test_mnemonic().Change(Bip44Changes.CHAIN_EXT)

    with pytest.raises(InvalidXpub, match="depth"):
        validate_account_xpub(change_level.PublicKey().ToExtended())


def test_garbage_is_not_an_xpub() -> None:
    with pytest.raises(InvalidXpub):
        validate_account_xpub("xpub-not-a-key")


def test_the_fingerprint_identifies_the_account_key() -> None:
    other = (
        Bip44.FromSeed(
            Bip39SeedGenerator(" ".join(["zoo"] * 11 + ["wrong"])).Generate(), Bip44Coins.TRON
        )
        .Purpose()
        .Coin()
        .Account(0)
    )

    assert xpub_fingerprint(DEV_XPUB) == xpub_fingerprint(DEV_XPUB)
    assert len(xpub_fingerprint(DEV_XPUB)) == 8
    assert xpub_fingerprint(DEV_XPUB) != xpub_fingerprint(other.PublicKey().ToExtended())
