"""The signer's decisions with its real key store (the development mnemonic) and its signed log
on disk: signatures that verify, the same answer for the same request, limits that survive a
restart, and each refusal of docs/money-out.md's policy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from tronpy.keys import Signature

from app.adapters.signer.keys import FileKeys, KeyFileError, dev_keys
from app.adapters.signer.signed_log import JsonlSignedLog
from app.adapters.tron.addresses import account_id
from app.adapters.tron.deposit_addresses import derive_deposit_address
from app.adapters.tron.raw_transactions import (
    TRC20_TRANSFER,
    UndecodableTransaction,
    decode_raw_transaction,
)
from app.adapters.tron.settings import DEV_XPUB
from app.domain.signing import Purpose, SignerLimits, Wanted
from app.services.signer import Signer, SigningRequest
from tron_sim import proto

pytestmark = pytest.mark.component

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
CUSTOMER = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
LIMITS = SignerLimits(
    per_transaction={Purpose.PAYOUT: 1_000_000_000, Purpose.SWEEP: 10**12},
    per_day={Purpose.PAYOUT: 1_500_000_000, Purpose.SWEEP: 10**13},
)


@pytest.fixture(scope="module")
def keys() -> FileKeys:
    hot, xprv = dev_keys()
    return FileKeys(hot, xprv, expected_xpub=DEV_XPUB)


def signer(keys: FileKeys, log_path: Path) -> Signer:
    return Signer(
        keys,
        JsonlSignedLog(log_path),
        LIMITS,
        token_contract=USDT,
        decode=decode_raw_transaction,
        undecodable=UndecodableTransaction,
        now=lambda: NOW,
    )


def raw_usdt_transfer(owner: str, to: str, amount: int, now_ms: int = NOW_MS) -> str:
    call = TRC20_TRANSFER + bytes(12) + account_id(to) + amount.to_bytes(32, "big")
    trigger = proto.trigger_smart_contract(
        b"\x41" + account_id(owner), b"\x41" + account_id(USDT), call
    )
    contract = proto.contract(
        "TriggerSmartContract", "type.googleapis.com/protocol.TriggerSmartContract", trigger
    )
    return proto.transaction_raw(
        ref_block_bytes=b"\x00\x01",
        ref_block_num=0,
        ref_block_hash=b"\x02" * 8,
        expiration=now_ms + 60_000,
        memo=b"",
        contract_bytes=contract,
        timestamp=now_ms,
        fee_limit=30_000_000,
    ).hex()


def payout(keys: FileKeys, request_id: str, amount: int, to: str = CUSTOMER) -> SigningRequest:
    return SigningRequest(
        request_id,
        "hot_wallet",
        Wanted(Purpose.PAYOUT, "trc20", to, amount, USDT),
        raw_usdt_transfer(keys.hot_wallet, to, amount),
    )


def test_the_development_keys_match_the_platforms_addresses(keys: FileKeys) -> None:
    # Deposit address i from the xprv is the one the workers derive from TRON_XPUB.
    for index in (0, 1, 7):
        assert keys.address(f"deposit:{index}") == derive_deposit_address(DEV_XPUB, index)
    assert keys.address("hot_wallet") == keys.hot_wallet
    assert keys.hot_wallet not in {derive_deposit_address(DEV_XPUB, i) for i in range(10)}
    hot, xprv = dev_keys()
    with pytest.raises(KeyFileError, match="does not belong to TRON_XPUB"):
        FileKeys(hot, xprv, expected_xpub=keys_other_xpub())


def keys_other_xpub() -> str:
    from bip_utils import Bip39SeedGenerator, Bip44, Bip44Coins

    seed = Bip39SeedGenerator(
        "legal winner thank year wave sausage worth useful legal winner thank yellow"
    ).Generate()
    return (
        Bip44.FromSeed(seed, Bip44Coins.TRON).Purpose().Coin().Account(0).PublicKey().ToExtended()
    )


def test_a_payout_is_signed_once_and_its_signature_verifies(keys: FileKeys, tmp_path: Path) -> None:
    log = tmp_path / "signed.jsonl"
    first = signer(keys, log).handle(payout(keys, "req-1", 600_000_000))
    assert first.signed and first.refused is None and first.txid is not None
    signature = Signature.fromhex(first.signature)  # type: ignore[arg-type]
    public = signature.recover_public_key_from_msg_hash(bytes.fromhex(first.txid))
    assert public.to_base58check_address() == keys.hot_wallet
    # Redelivered, or after a restart: the same answer, not a second signature.
    assert signer(keys, log).handle(payout(keys, "req-1", 600_000_000)) == first
    assert b"abandon" not in log.read_bytes()  # the log holds no key material


def test_the_daily_limit_counts_what_was_signed_before_a_restart(
    keys: FileKeys, tmp_path: Path
) -> None:
    log = tmp_path / "signed.jsonl"
    assert signer(keys, log).handle(payout(keys, "a", 900_000_000)).signed
    restarted = signer(keys, log)
    over = restarted.handle(payout(keys, "b", 700_000_000))
    assert (over.signed, over.refused) == (False, "limit_per_day")
    assert restarted.handle(payout(keys, "c", 600_000_000)).signed


def test_the_signer_refuses_what_its_policy_forbids(keys: FileKeys, tmp_path: Path) -> None:
    sign = signer(keys, tmp_path / "signed.jsonl")
    assert sign.handle(payout(keys, "big", 1_000_000_001)).refused == "limit_per_transaction"
    ours = derive_deposit_address(DEV_XPUB, 3)
    assert sign.handle(payout(keys, "ours", 5_000_000, to=ours)).refused == "destination_is_ours"
    lying = SigningRequest(
        "lying",
        "hot_wallet",
        Wanted(Purpose.PAYOUT, "trc20", CUSTOMER, 5_000_000, USDT),
        raw_usdt_transfer(keys.hot_wallet, CUSTOMER, 500_000_000),
    )
    assert sign.handle(lying).refused == "decoded_mismatch"
    garbage = SigningRequest("garbage", "hot_wallet", lying.wanted, "0a0b")
    assert sign.handle(garbage).refused == "undecodable"
    unknown = SigningRequest("who", "cold_wallet", lying.wanted, lying.raw_data_hex)
    assert sign.handle(unknown).refused == "unknown_account"


def test_a_sweep_is_signed_with_the_deposit_addresses_key(keys: FileKeys, tmp_path: Path) -> None:
    deposit = keys.address("deposit:5")
    request = SigningRequest(
        "sweep-5",
        "deposit:5",
        Wanted(Purpose.SWEEP, "trc20", keys.hot_wallet, 150_000_000, USDT),
        raw_usdt_transfer(deposit, keys.hot_wallet, 150_000_000),
    )
    answer = signer(keys, tmp_path / "signed.jsonl").handle(request)
    assert answer.signed, answer
    signature = Signature.fromhex(answer.signature)  # type: ignore[arg-type]
    public = signature.recover_public_key_from_msg_hash(bytes.fromhex(answer.txid))  # type: ignore[arg-type]
    assert public.to_base58check_address() == deposit
