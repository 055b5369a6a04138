"""Reading an unsigned transaction's ``raw_data_hex`` exactly as the chain will execute it.

The signer never signs what it cannot read (docs/money-out.md, "The signer"): it takes the bytes a
node built, not the node's JSON rendering of them, and decodes the protobuf ``Transaction.raw``
itself. Only the two shapes money out uses are understood — a TRX ``TransferContract`` and a
``TriggerSmartContract`` calling a TRC-20 ``transfer(address,uint256)`` with no TRX attached — in
a transaction of exactly one contract, no permission id, no extra fields. Anything else, including a
field this reader does not know, is ``UndecodableTransaction``: the safe answer to the unknown is
not to sign it.

Field numbers from java-tron's ``core/Tron.proto`` and ``core/contract/*.proto``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal

from app.adapters.tron.addresses import TRON_ADDRESS_PREFIX, to_base58

TRANSFER_CONTRACT: Final = 1
TRIGGER_SMART_CONTRACT: Final = 31
_TYPE_URLS: Final = {
    TRANSFER_CONTRACT: "type.googleapis.com/protocol.TransferContract",
    TRIGGER_SMART_CONTRACT: "type.googleapis.com/protocol.TriggerSmartContract",
}
TRC20_TRANSFER: Final = bytes.fromhex("a9059cbb")  # transfer(address,uint256)
_VARINT, _BYTES = 0, 2
MAX_RAW_BYTES: Final = 4096  # a one-transfer transaction is ~200 bytes


class UndecodableTransaction(ValueError):
    """Bytes that are not one transfer this reader understands completely."""


@dataclass(frozen=True, slots=True)
class DecodedTransfer:
    """What the transaction does, and under which terms."""

    kind: Literal["trx", "trc20"]
    owner: str  # base58check: whose key must sign
    to: str  # the recipient (for trc20: of the tokens, not the contract)
    amount: int  # sun for trx; the token's base units for trc20
    token_contract: str | None  # trc20 only
    fee_limit: int  # sun the sender may burn for energy (0 for trx)
    expiration_ms: int
    timestamp_ms: int
    ref_block_bytes: bytes
    ref_block_hash: bytes


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise UndecodableTransaction("a varint runs past the end or past 64 bits")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) in order; only varint and length-delimited fields."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, at = _varint(data, at)
            yield number, wire, value
        elif wire == _BYTES:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise UndecodableTransaction(f"field {number} runs past the end")
            yield number, wire, data[at : at + length]
            at += length
        else:
            raise UndecodableTransaction(f"field {number} has wire type {wire}, not read here")


def _message(data: bytes, known: dict[int, int], what: str) -> dict[int, int | bytes]:
    """Every field of a message, each at most once, each of a known number and wire type."""
    found: dict[int, int | bytes] = {}
    for number, wire, value in _fields(data):
        if known.get(number) != wire:
            raise UndecodableTransaction(f"{what} has field {number} (wire {wire}), not read here")
        if number in found:
            raise UndecodableTransaction(f"{what} repeats field {number}")
        found[number] = value
    return found


def _bytes(fields: dict[int, int | bytes], number: int) -> bytes:
    value = fields.get(number, b"")
    assert isinstance(value, bytes)
    return value


def _int(fields: dict[int, int | bytes], number: int) -> int:
    value = fields.get(number, 0)
    assert isinstance(value, int)
    return value


def _address(raw: bytes, what: str) -> str:
    if len(raw) != 21 or raw[:1] != TRON_ADDRESS_PREFIX:
        raise UndecodableTransaction(f"{what} is not a 21-byte Tron address")
    return to_base58(raw.hex())


# Transaction.raw: ref_block_bytes 1, ref_block_num 3, ref_block_hash 4, expiration 8, auths 9,
# data 10, contract 11, scripts 12, timestamp 14, fee_limit 18. Only these are accepted, and
# neither auths, data (a memo) nor scripts.
_RAW: Final = {1: _BYTES, 3: _VARINT, 4: _BYTES, 8: _VARINT, 11: _BYTES, 14: _VARINT, 18: _VARINT}
# Transaction.Contract: type 1, parameter 2 (google.protobuf.Any); no provider, name, permission.
_CONTRACT: Final = {1: _VARINT, 2: _BYTES}
_ANY: Final = {1: _BYTES, 2: _BYTES}
_TRANSFER: Final = {1: _BYTES, 2: _BYTES, 3: _VARINT}
# TriggerSmartContract: owner 1, contract 2, call_value 3, data 4; no token value, no token id.
_TRIGGER: Final = {1: _BYTES, 2: _BYTES, 3: _VARINT, 4: _BYTES}


def decode_raw_transaction(raw_data_hex: str) -> DecodedTransfer:
    """The one transfer ``raw_data_hex`` makes, or ``UndecodableTransaction`` saying why not."""
    if len(raw_data_hex) > 2 * MAX_RAW_BYTES:
        raise UndecodableTransaction(f"more than {MAX_RAW_BYTES} bytes")
    try:
        data = bytes.fromhex(raw_data_hex)
    except ValueError:
        raise UndecodableTransaction("raw_data_hex is not hex") from None
    raw = _message(data, _RAW, "Transaction.raw")
    contract_bytes = _bytes(raw, 11)
    if not contract_bytes:
        raise UndecodableTransaction("the transaction has no contract")
    contract = _message(contract_bytes, _CONTRACT, "Transaction.Contract")
    kind = _int(contract, 1)
    parameter = _message(_bytes(contract, 2), _ANY, "the contract's parameter")
    type_url = _bytes(parameter, 1).decode("ascii", "replace")
    if kind not in _TYPE_URLS or type_url != _TYPE_URLS[kind]:
        raise UndecodableTransaction(f"contract type {kind} ({type_url}) is not a transfer")
    value = _bytes(parameter, 2)
    terms = {
        "fee_limit": _int(raw, 18),
        "expiration_ms": _int(raw, 8),
        "timestamp_ms": _int(raw, 14),
        "ref_block_bytes": _bytes(raw, 1),
        "ref_block_hash": _bytes(raw, 4),
    }
    if kind == TRANSFER_CONTRACT:
        transfer = _message(value, _TRANSFER, "TransferContract")
        return DecodedTransfer(
            kind="trx",
            owner=_address(_bytes(transfer, 1), "the owner"),
            to=_address(_bytes(transfer, 2), "the recipient"),
            amount=_int(transfer, 3),
            token_contract=None,
            **terms,  # type: ignore[arg-type]
        )
    trigger = _message(value, _TRIGGER, "TriggerSmartContract")
    if _int(trigger, 3):
        raise UndecodableTransaction("the contract call sends TRX along (call_value)")
    call = _bytes(trigger, 4)
    if len(call) != 4 + 64 or call[:4] != TRC20_TRANSFER:
        raise UndecodableTransaction("the contract call is not transfer(address,uint256)")
    recipient_word, amount_word = call[4:36], call[36:68]
    if any(recipient_word[:12]):
        raise UndecodableTransaction("the recipient word is not an address")
    return DecodedTransfer(
        kind="trc20",
        owner=_address(_bytes(trigger, 1), "the owner"),
        to=to_base58(recipient_word[12:].hex()),
        amount=int.from_bytes(amount_word, "big"),
        token_contract=_address(_bytes(trigger, 2), "the token contract"),
        **terms,  # type: ignore[arg-type]
    )
