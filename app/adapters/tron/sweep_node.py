"""The node as sweeps use it (``SweepNode``, app/services/sweeps.py): ``TronNode``'s calls, where
the chain stands (``NodeSending``), the broadcast of a stored transaction, and what free bandwidth
a deposit address has left (``wallet/getaccountresource``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.adapters.tron import sending
from app.adapters.tron.addresses import to_base58
from app.adapters.tron.money_out_node import ChainPosition, NodeSending
from app.adapters.tron.node import TronNode
from app.adapters.tron.sending import (
    BroadcastResult,
    ChainPrices,
    TransactionReceipt,
    UnsignedTransaction,
)
from app.domain.sweeps import ChainTransaction


class SweepSending:
    def __init__(self, node: TronNode) -> None:
        self._node = node
        self._position = NodeSending(node)

    async def chain_view(self) -> ChainPosition:
        return await self._position.chain_view()

    async def build_token_transfer(
        self, owner: str, to: str, amount: int, token_contract: str, fee_limit: int
    ) -> UnsignedTransaction:
        return await self._node.build_token_transfer(owner, to, amount, token_contract, fee_limit)

    async def build_trx_transfer(self, owner: str, to: str, amount_sun: int) -> UnsignedTransaction:
        return await self._node.build_trx_transfer(owner, to, amount_sun)

    async def broadcast_signed(self, tx: ChainTransaction, signature_hex: str) -> BroadcastResult:
        # Stored as built (PostgreSQL): the node packs raw_data again to check the txid.
        unsigned = UnsignedTransaction(
            txid=tx.txid,
            raw_data=tx.raw_data,
            raw_data_hex=tx.raw_data_hex,
            expiration_ms=tx.expiration_ms,
            visible=True,
        )
        return await self._node.broadcast(unsigned, signature_hex)

    async def transaction_receipt(self, txid: str) -> TransactionReceipt | None:
        return await self._node.transaction_receipt(txid)

    async def token_balance(self, token_contract: str, owner: str) -> int:
        return await self._node.token_balance(token_contract, owner)

    async def trx_balance(self, address: str) -> int:
        return await self._node.trx_balance(address)

    async def transfer_energy(self, owner: str, to: str, amount: int, token_contract: str) -> int:
        return await self._node.transfer_energy(owner, to, amount, token_contract)

    async def chain_prices(self) -> ChainPrices:
        return await self._node.chain_prices()

    async def free_bandwidth(self, address: str) -> int | None:
        """Free bytes ``address`` may still use now (``freeNetLimit − freeNetUsed``, recovered
        to the head block); None for an address never activated (``{}``)."""
        account = to_base58(address)

        async def call() -> int | None:
            # Through TronNode's one client, retries and metrics (its ``_call``).
            answer = await self._node._provider.make_request(
                "wallet/getaccountresource", {"address": account, "visible": True}
            )
            return parse_free_bandwidth(answer)

        return await self._node._call("getaccountresource", call)


def parse_free_bandwidth(answer: Any) -> int | None:
    """``wallet/getaccountresource``: zeros are left out, as java-tron prints them."""
    body: Mapping[str, Any] = sending.mapping(answer)
    if not body:
        return None
    return max(0, sending.count(body, "freeNetLimit") - sending.count(body, "freeNetUsed"))
