"""The signer's reader of unsigned transactions: what it understands exactly, and what it refuses.

Transactions are packed by the simulator's encoder (tron_sim/proto.py), whose bytes hash to the
same txIDs as java-tron's and tronpy's — an encoder written apart from the reader under test."""

from __future__ import annotations

import re

import pytest

from app.adapters.tron.addresses import account_id
from app.adapters.tron.raw_transactions import (
    TRC20_TRANSFER,
    UndecodableTransaction,
    decode_raw_transaction,
)
from tron_sim import proto

pytestmark = pytest.mark.unit

HOT = "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8"
CUSTOMER = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
TERMS = {
    "ref_block_bytes": b"\x01\x02",
    "ref_block_num": 0,
    "ref_block_hash": b"\x03" * 8,
    "expiration": 1_780_000_060_000,
    "memo": b"",
    "timestamp": 1_780_000_000_000,
}


def address(text: str) -> bytes:
    return b"\x41" + account_id(text)


def call(to: str, amount: int) -> bytes:
    return TRC20_TRANSFER + bytes(12) + account_id(to) + amount.to_bytes(32, "big")


def trc20_raw(
    to: str = CUSTOMER, amount: int = 2_000_000, *, data: bytes | None = None, **changes: object
) -> str:
    trigger = proto.trigger_smart_contract(
        address(HOT), address(USDT), call(to, amount) if data is None else data
    )
    contract = proto.contract(
        "TriggerSmartContract", "type.googleapis.com/protocol.TriggerSmartContract", trigger
    )
    fields = {**TERMS, "contract_bytes": contract, "fee_limit": 30_000_000, **changes}
    return proto.transaction_raw(**fields).hex()  # type: ignore[arg-type]


def test_a_trc20_transfer_is_read_with_its_recipient_amount_and_terms() -> None:
    decoded = decode_raw_transaction(trc20_raw())
    assert (decoded.kind, decoded.owner, decoded.to, decoded.amount) == (
        "trc20",
        HOT,
        CUSTOMER,
        2_000_000,
    )
    assert decoded.token_contract == USDT
    assert (decoded.fee_limit, decoded.expiration_ms) == (30_000_000, 1_780_000_060_000)


def test_a_trx_transfer_is_read() -> None:
    transfer = proto.transfer_contract(address(HOT), address(CUSTOMER), 7_000_000)
    contract = proto.contract(
        "TransferContract", "type.googleapis.com/protocol.TransferContract", transfer
    )
    raw = proto.transaction_raw(**TERMS, contract_bytes=contract, fee_limit=0).hex()  # type: ignore[arg-type]
    decoded = decode_raw_transaction(raw)
    assert (decoded.kind, decoded.to, decoded.amount, decoded.token_contract) == (
        "trx",
        CUSTOMER,
        7_000_000,
        None,
    )


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("zz", "not hex"),
        ("", "no contract"),
        (trc20_raw(memo=b"pay me"), "field 10"),  # a memo: not read, so not signed
        (trc20_raw(data=bytes.fromhex("095ea7b3") + bytes(64)), "not transfer(address,uint256)"),
        (trc20_raw(data=call(CUSTOMER, 1) + b"\x00"), "not transfer(address,uint256)"),
        (trc20_raw(data=TRC20_TRANSFER + b"\x01" * 32 + bytes(32)), "not an address"),
        ("0a" * 5000, "more than 4096 bytes"),
    ],
    ids=["not-hex", "empty", "memo", "approve", "long-call", "dirty-address", "huge"],
)
def test_what_it_cannot_read_completely_is_refused(raw: str, why: str) -> None:
    with pytest.raises(UndecodableTransaction, match=re.escape(why)):
        decode_raw_transaction(raw)


def test_trx_sent_along_a_contract_call_or_a_permission_id_is_refused() -> None:
    paying = proto.trigger_smart_contract(
        address(HOT), address(USDT), call(CUSTOMER, 1), call_value=5
    )
    contract = proto.contract(
        "TriggerSmartContract", "type.googleapis.com/protocol.TriggerSmartContract", paying
    )
    raw = proto.transaction_raw(**TERMS, contract_bytes=contract, fee_limit=1).hex()  # type: ignore[arg-type]
    with pytest.raises(UndecodableTransaction, match="call_value"):
        decode_raw_transaction(raw)
    multisig = proto.contract(
        "TriggerSmartContract",
        "type.googleapis.com/protocol.TriggerSmartContract",
        proto.trigger_smart_contract(address(HOT), address(USDT), call(CUSTOMER, 1)),
        permission_id=2,
    )
    raw = proto.transaction_raw(**TERMS, contract_bytes=multisig, fee_limit=1).hex()  # type: ignore[arg-type]
    with pytest.raises(UndecodableTransaction, match="field 5"):
        decode_raw_transaction(raw)


def test_a_type_url_that_does_not_match_the_contract_type_is_refused() -> None:
    transfer = proto.transfer_contract(address(HOT), address(CUSTOMER), 1)
    contract = proto.contract(
        "TriggerSmartContract", "type.googleapis.com/protocol.TransferContract", transfer
    )
    raw = proto.transaction_raw(**TERMS, contract_bytes=contract, fee_limit=0).hex()  # type: ignore[arg-type]
    with pytest.raises(UndecodableTransaction, match="is not a transfer"):
        decode_raw_transaction(raw)
