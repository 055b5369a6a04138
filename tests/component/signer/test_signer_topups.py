"""The signer signs a sweep's top-up to any of our deposit addresses: the request names the
deposit account it pays and the signer derives that address itself — whatever its index, before
any sweep of that index was asked (a fresh signer knows only the first thousand otherwise)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.adapters.signer.keys import FileKeys, dev_keys
from app.adapters.signer.signed_log import JsonlSignedLog
from app.adapters.tron.addresses import account_id
from app.adapters.tron.raw_transactions import UndecodableTransaction, decode_raw_transaction
from app.adapters.tron.settings import DEV_XPUB
from app.domain.signing import Purpose, SignerLimits, Wanted
from app.services.signer import Signer, SigningRequest
from tests.component.signer.test_signer import NOW, NOW_MS, USDT
from tron_sim import proto

pytestmark = pytest.mark.component

LIMITS = SignerLimits(
    per_transaction={Purpose.SWEEP_TOPUP: 30_000_000},
    per_day={Purpose.SWEEP_TOPUP: 3_000_000_000},
)
INDEX = 4_321  # beyond the margin a fresh signer derives


def raw_trx_transfer(owner: str, to: str, amount: int) -> str:
    transfer = proto.transfer_contract(
        b"\x41" + account_id(owner), b"\x41" + account_id(to), amount
    )
    contract = proto.contract(
        "TransferContract", "type.googleapis.com/protocol.TransferContract", transfer
    )
    return proto.transaction_raw(
        ref_block_bytes=b"\x00\x01",
        ref_block_num=0,
        ref_block_hash=b"\x02" * 8,
        expiration=NOW_MS + 60_000,
        memo=b"",
        contract_bytes=contract,
        timestamp=NOW_MS,
        fee_limit=0,
    ).hex()


def topup(keys: FileKeys, request_id: str, to: str, named: str | None) -> SigningRequest:
    return SigningRequest(
        request_id,
        "hot_wallet",
        Wanted(Purpose.SWEEP_TOPUP, "trx", to, 7_080_000),
        raw_trx_transfer(keys.hot_wallet, to, 7_080_000),
        named,
    )


def test_a_top_up_names_the_deposit_account_it_pays(tmp_path: Path) -> None:
    hot, xprv = dev_keys()
    keys = FileKeys(hot, xprv, expected_xpub=DEV_XPUB)  # fresh: has derived nothing yet
    # Deposit addresses derived here, without touching the signer's key store.
    elsewhere = FileKeys(hot, xprv, expected_xpub=DEV_XPUB)
    deposit, next_one = (elsewhere.address(f"deposit:{i}") for i in (INDEX, INDEX + 1))
    sign = Signer(
        keys,
        JsonlSignedLog(tmp_path / "signed.jsonl"),
        LIMITS,
        token_contract=USDT,
        decode=decode_raw_transaction,
        undecodable=UndecodableTransaction,
        now=lambda: NOW,
    )
    assert sign.handle(topup(keys, "unnamed", deposit, None)).refused == "destination"
    assert sign.handle(topup(keys, "hot", deposit, "hot_wallet")).refused == "destination"
    assert sign.handle(topup(keys, "bad", deposit, "deposit:x")).refused == "unknown_account"
    other = topup(keys, "other", next_one, f"deposit:{INDEX}")
    assert sign.handle(other).refused == "destination"  # ours, but not the address it names
    signed = sign.handle(topup(keys, "named", deposit, f"deposit:{INDEX}"))
    assert signed.signed, signed
