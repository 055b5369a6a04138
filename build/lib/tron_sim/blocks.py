"""Blocks: header hashing, the block id, and the JSON java-tron prints for a block."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from tron_sim import proto
from tron_sim.encoding import sha256, show_address
from tron_sim.execution import Receipt
from tron_sim.ledger import JournalEntry
from tron_sim.render import receipt_json
from tron_sim.signing import Signer
from tron_sim.transactions import Transaction

BLOCK_VERSION = 32
EMPTY_ROOT = bytes(32)


def merkle_root(leaves: list[bytes]) -> bytes:
    """java-tron's MerkleTree: pairwise sha256, an odd node carried up unchanged."""
    if not leaves:
        return EMPTY_ROOT
    level = leaves
    while len(level) > 1:
        nxt = [sha256(level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


@dataclass(slots=True, eq=False)
class Block:
    number: int
    timestamp: int
    parent_id: bytes
    witness_index: int
    witness_address: bytes
    transactions: list[Transaction]
    receipts: list[Receipt]
    journal: list[JournalEntry]
    tx_trie_root: bytes = EMPTY_ROOT
    id: bytes = b""
    witness_signature: bytes = b""
    _json: dict[bool, bytes] = field(default_factory=dict)
    _infos: dict[bool, bytes] = field(default_factory=dict)

    @classmethod
    def seal(
        cls,
        *,
        number: int,
        timestamp: int,
        parent_id: bytes,
        witness_index: int,
        witness: Signer,
        transactions: list[Transaction],
        receipts: list[Receipt],
        journal: list[JournalEntry],
    ) -> Block:
        leaves = [
            sha256(proto.transaction(tx.raw, tx.signatures, r.contract_ret))
            for tx, r in zip(transactions, receipts, strict=True)
        ]
        root = merkle_root(leaves)
        header = proto.block_header_raw(
            timestamp=timestamp,
            tx_trie_root=root,
            parent_hash=parent_id,
            number=number,
            witness_address=witness.address,
            version=BLOCK_VERSION,
        )
        header_hash = sha256(header)
        for receipt in receipts:
            receipt.block_number = number
            receipt.block_timestamp = timestamp
        return cls(
            number=number,
            timestamp=timestamp,
            parent_id=parent_id,
            witness_index=witness_index,
            witness_address=witness.address,
            transactions=transactions,
            receipts=receipts,
            journal=journal,
            tx_trie_root=root,
            id=number.to_bytes(8, "big") + header_hash[8:],
            witness_signature=witness.sign(header_hash),
        )

    @property
    def id_hex(self) -> str:
        return self.id.hex()

    def to_json(self, visible: bool) -> dict[str, Any]:
        """printBlockToJSON: proto3 defaults (number 0) omitted, `transactions` only if any."""
        raw: dict[str, Any] = {}
        if self.number:
            raw["number"] = self.number
        raw["txTrieRoot"] = self.tx_trie_root.hex()
        raw["witness_address"] = show_address(self.witness_address, visible)
        raw["parentHash"] = self.parent_id.hex()
        raw["version"] = BLOCK_VERSION
        raw["timestamp"] = self.timestamp
        out: dict[str, Any] = {
            "blockID": self.id_hex,
            "block_header": {
                "raw_data": raw,
                "witness_signature": self.witness_signature.hex(),
            },
        }
        if self.transactions:
            out["transactions"] = [
                tx.to_json(visible, r.contract_ret)
                for tx, r in zip(self.transactions, self.receipts, strict=True)
            ]
        return out

    def json_bytes(self, visible: bool) -> bytes:
        """The block's JSON, rendered once per `visible` (a block never changes once sealed)."""
        cached = self._json.get(visible)
        if cached is None:
            cached = self._json[visible] = orjson.dumps(self.to_json(visible))
        return cached

    def infos_bytes(self, visible: bool) -> bytes:
        """gettransactioninfobyblocknum's JSON array, rendered once per `visible`."""
        cached = self._infos.get(visible)
        if cached is None:
            cached = self._infos[visible] = orjson.dumps(
                [receipt_json(r, visible) for r in self.receipts]
            )
        return cached
