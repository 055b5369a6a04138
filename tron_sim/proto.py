"""The few protobuf messages whose bytes java-tron hashes: transaction raw data, block headers.

java-tron ignores a client's `raw_data_hex` and `txID`: it packs the JSON `raw_data` into the
protobuf `Transaction.raw` and takes `txID = sha256(raw bytes)`. Encoding the same fields in the
same order (by field number, proto3 defaults omitted) gives the same txID tronpy signs, and the same
`raw_data_hex` a real node prints.
"""

from __future__ import annotations

CONTRACT_TYPES = {"TransferContract": 1, "TriggerSmartContract": 31}
TYPE_URL_PREFIX = "type.googleapis.com/protocol."

# protocol.Transaction.Result.contractResult
CONTRACT_RESULTS = {
    "DEFAULT": 0,
    "SUCCESS": 1,
    "REVERT": 2,
    "OUT_OF_ENERGY": 10,
}

_WIRE_VARINT = 0
_WIRE_BYTES = 2


def varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 negatives are ten-byte two's complement on the wire
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    if not value:
        return b""
    return varint(number << 3 | _WIRE_VARINT) + varint(value)


def field_bytes(number: int, value: bytes) -> bytes:
    if not value:
        return b""
    return varint(number << 3 | _WIRE_BYTES) + varint(len(value)) + value


def transfer_contract(owner: bytes, to: bytes, amount: int) -> bytes:
    """protocol.TransferContract."""
    return field_bytes(1, owner) + field_bytes(2, to) + field_varint(3, amount)


def trigger_smart_contract(
    owner: bytes,
    contract_address: bytes,
    data: bytes,
    call_value: int = 0,
    call_token_value: int = 0,
    token_id: int = 0,
) -> bytes:
    """protocol.TriggerSmartContract."""
    return (
        field_bytes(1, owner)
        + field_bytes(2, contract_address)
        + field_varint(3, call_value)
        + field_bytes(4, data)
        + field_varint(5, call_token_value)
        + field_varint(6, token_id)
    )


def contract(kind: str, type_url: str, value: bytes, permission_id: int = 0) -> bytes:
    """protocol.Transaction.Contract with its parameter packed in a google.protobuf.Any."""
    any_message = field_bytes(1, type_url.encode()) + field_bytes(2, value)
    return (
        field_varint(1, CONTRACT_TYPES[kind])
        + field_bytes(2, any_message)
        + field_varint(5, permission_id)
    )


def transaction_raw(
    *,
    ref_block_bytes: bytes,
    ref_block_num: int,
    ref_block_hash: bytes,
    expiration: int,
    memo: bytes,
    contract_bytes: bytes,
    timestamp: int,
    fee_limit: int,
) -> bytes:
    """protocol.Transaction.raw."""
    return (
        field_bytes(1, ref_block_bytes)
        + field_varint(3, ref_block_num)
        + field_bytes(4, ref_block_hash)
        + field_varint(8, expiration)
        + field_bytes(10, memo)
        + field_bytes(11, contract_bytes)
        + field_varint(14, timestamp)
        + field_varint(18, fee_limit)
    )


def transaction(raw: bytes, signatures: list[bytes], contract_ret: str) -> bytes:
    """protocol.Transaction (raw, signatures, ret) — what the block's transaction trie hashes."""
    result = field_varint(3, CONTRACT_RESULTS.get(contract_ret, 0))
    return (
        field_bytes(1, raw)
        + b"".join(field_bytes(2, sig) for sig in signatures)
        + field_bytes(5, result)
    )


def transaction_size(raw: bytes, signatures: list[bytes]) -> int:
    """len(transaction(raw, signatures, "DEFAULT")): the transaction without `ret`, not built."""
    return sum(1 + len(varint(len(part))) + len(part) for part in (raw, *signatures) if part)


def block_header_raw(
    *,
    timestamp: int,
    tx_trie_root: bytes,
    parent_hash: bytes,
    number: int,
    witness_address: bytes,
    version: int,
) -> bytes:
    """protocol.BlockHeader.raw."""
    return (
        field_varint(1, timestamp)
        + field_bytes(2, tx_trie_root)
        + field_bytes(3, parent_hash)
        + field_varint(7, number)
        + field_bytes(9, witness_address)
        + field_varint(10, version)
    )
