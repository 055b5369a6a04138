"""The node as the money-out driver uses it (``SendingNode``, app/services/money_out_driver.py).

A thin layer over ``TronNode``: where the chain stands (head and solidified block numbers with
their block times: a transaction is given up only once the solidified block is past its
expiration), and the broadcast of an attempt stored in PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.adapters.tron.node import TronNode
from app.adapters.tron.sending import BroadcastResult, TransactionReceipt, UnsignedTransaction
from app.domain.money_out import Attempt


@dataclass(frozen=True)
class ChainPosition:
    head_number: int
    head_time_ms: int
    solid_number: int
    solid_time_ms: int


class NodeSending:
    def __init__(self, node: TronNode) -> None:
        self._node = node

    async def chain_view(self) -> ChainPosition:
        head = await self._node.node_head()
        head_block = await self._node.block_header(head.head_number)
        solid_block = await self._node.block_header(head.solidified_number)
        return ChainPosition(
            head_number=head.head_number,
            head_time_ms=head_block.timestamp_ms,
            solid_number=head.solidified_number,
            solid_time_ms=solid_block.timestamp_ms,
        )

    async def build_token_transfer(
        self, owner: str, to: str, amount: int, token_contract: str, fee_limit: int
    ) -> UnsignedTransaction:
        return await self._node.build_token_transfer(owner, to, amount, token_contract, fee_limit)

    async def broadcast_signed(self, attempt: Attempt, signature_hex: str) -> BroadcastResult:
        return await self._node.broadcast(_unsigned(attempt), signature_hex)

    async def transaction_receipt(self, txid: str) -> TransactionReceipt | None:
        return await self._node.transaction_receipt(txid)

    async def token_balance(self, token_contract: str, owner: str) -> int:
        return await self._node.token_balance(token_contract, owner)


def _unsigned(attempt: Attempt) -> UnsignedTransaction:
    # Stored as built (PostgreSQL): the node packs raw_data again to check the txid.
    return UnsignedTransaction(
        txid=attempt.txid,
        raw_data=attempt.raw_data,
        raw_data_hex=attempt.raw_data_hex,
        expiration_ms=attempt.expiration_ms,
        visible=True,
    )
