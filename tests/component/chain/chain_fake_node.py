"""A programmable stand-in for the three java-tron endpoints the chain watcher reads.

It answers in java-tron's JSON (visible=true): ``getnodeinfo``'s "Num:…,ID:…" strings, blocks with
``blockID``/``parentHash``/``transactions[].txID`` and receipts whose ``log[].address`` is the
base58check of the contract's 20 bytes without ``41`` (what java-tron prints). Tests mine blocks,
replace the last blocks (reorg) and inject faults.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import base58
from aiohttp import web

from app.adapters.tron.addresses import account_id
from app.domain.observations import Observation

TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
APPROVAL_TOPIC = "8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925"
USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
OTHER_TOKEN = "TEkxiTehnzSmSe2XqrBj4w32RUN966rdz8"
GENESIS_TIME_MS = 1_700_000_000_000

_counter = itertools.count()


def _sha(*parts: object) -> bytes:
    return hashlib.sha256("|".join(map(str, parts)).encode()).digest()


def word(address: str) -> str:
    return "00" * 12 + account_id(address).hex()


def visible_log_address(address: str) -> str:
    return base58.b58encode_check(account_id(address)).decode()


@dataclass
class FakeTx:
    txid: str
    logs: list[dict[str, Any]]
    result: str | None = "SUCCESS"  # receipt.result; None for a TRX transfer

    def receipt(self, number: int, timestamp: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.txid,
            "blockNumber": number,
            "blockTimeStamp": timestamp,
            "contractResult": [""],
            "receipt": {} if self.result is None else {"result": self.result},
        }
        if self.logs and self.result == "SUCCESS":
            out["log"] = self.logs
        if self.result not in (None, "SUCCESS"):
            out["result"] = "FAILED"
            out["resMessage"] = "REVERT opcode executed"
        return out


@dataclass
class FakeBlock:
    number: int
    block_id: str
    parent_hash: str
    timestamp: int
    txs: list[FakeTx] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "parentHash": self.parent_hash,
            "timestamp": self.timestamp,
            "version": 32,
            "witness_address": "TLyqzVGLV1srkB7dToTAEqgDSfPtXRJZYH",
            "txTrieRoot": "00" * 32,
        }
        if self.number:
            raw["number"] = self.number
        out: dict[str, Any] = {"blockID": self.block_id, "block_header": {"raw_data": raw}}
        if self.txs:
            out["transactions"] = [
                {"txID": tx.txid, "ret": [{"contractRet": tx.result or "SUCCESS"}]}
                for tx in self.txs
            ]
        return out


def transfer_log(sender: str, receiver: str, amount: int, contract: str = USDT) -> dict[str, Any]:
    return {
        "address": visible_log_address(contract),
        "topics": [TRANSFER_TOPIC, word(sender), word(receiver)],
        "data": f"{amount:064x}",
    }


def new_txid() -> str:
    return _sha("tx", next(_counter)).hex()


def usdt_transfer(sender: str, receiver: str, amount: int, *, result: str = "SUCCESS") -> FakeTx:
    return FakeTx(new_txid(), [transfer_log(sender, receiver, amount)], result)


class FakeChain:
    def __init__(self, *, solid_lag: int = 19, decimals: int = 6) -> None:
        self.blocks: list[FakeBlock] = []
        self.solid_lag = solid_lag
        self.decimals = decimals
        self.faults: deque[tuple[str | None, int]] = deque()
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.before_receipts: Callable[[int], None] | None = None
        self._fork = 0
        self.mine()  # genesis

    @property
    def head(self) -> FakeBlock:
        return self.blocks[-1]

    def mine(self, *txs: FakeTx) -> FakeBlock:
        number = len(self.blocks)
        parent = self.blocks[-1].block_id if self.blocks else "00" * 32
        digest = _sha("block", number, parent, self._fork, [tx.txid for tx in txs])
        block = FakeBlock(
            number=number,
            block_id=number.to_bytes(8, "big").hex() + digest[8:].hex(),
            parent_hash=parent,
            timestamp=GENESIS_TIME_MS + 3000 * number,
            txs=list(txs),
        )
        self.blocks.append(block)
        return block

    def mine_empty(self, count: int) -> None:
        for _ in range(count):
            self.mine()

    def reorg(self, depth: int, *replacements: list[FakeTx], extra: int = 0) -> list[FakeBlock]:
        """Replace the last ``depth`` blocks by ``depth + extra`` new ones (txs per new block)."""
        removed = self.blocks[-depth:]
        del self.blocks[-depth:]
        self._fork += 1
        for i in range(depth + extra):
            self.mine(*(replacements[i] if i < len(replacements) else []))
        return removed

    def fail_next(self, count: int, *, status: int = 503, endpoint: str | None = None) -> None:
        self.faults.extend((endpoint, status) for _ in range(count))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/wallet/getnodeinfo", self._node_info)
        app.router.add_post("/wallet/getblockbynum", self._block)
        app.router.add_post("/wallet/gettransactioninfobyblocknum", self._receipts)
        app.router.add_post("/wallet/triggerconstantcontract", self._constant)
        return app

    async def _fault(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        body = await request.json() if request.can_read_body else {}
        endpoint = request.path.rsplit("/", 1)[-1]
        self.requests.append((endpoint, body, dict(request.headers)))
        if self.faults and self.faults[0][0] in (None, endpoint):
            _, status = self.faults.popleft()
            return body, web.Response(status=status, text="upstream unavailable")
        return body, None

    async def _node_info(self, request: web.Request) -> web.Response:
        _, fault = await self._fault(request)
        if fault:
            return fault
        solid = self.blocks[max(0, len(self.blocks) - 1 - self.solid_lag)]
        return web.json_response(
            {
                "block": f"Num:{self.head.number},ID:{self.head.block_id}",
                "solidityBlock": f"Num:{solid.number},ID:{solid.block_id}",
                "activeConnectCount": 0,
            }
        )

    async def _block(self, request: web.Request) -> web.Response:
        body, fault = await self._fault(request)
        if fault:
            return fault
        number = int(body["num"])
        if number >= len(self.blocks):
            return web.json_response({})
        return web.json_response(self.blocks[number].json())

    async def _receipts(self, request: web.Request) -> web.Response:
        body, fault = await self._fault(request)
        if fault:
            return fault
        number = int(body["num"])
        if self.before_receipts is not None:
            self.before_receipts(number)
        if number >= len(self.blocks):
            return web.json_response([])
        block = self.blocks[number]
        return web.json_response([tx.receipt(number, block.timestamp) for tx in block.txs])

    async def _constant(self, request: web.Request) -> web.Response:
        body, fault = await self._fault(request)
        if fault:
            return fault
        if body.get("function_selector") != "decimals()":
            return web.json_response({"result": {"code": "OTHER_ERROR", "message": "unknown"}})
        return web.json_response(
            {"result": {"result": True}, "constant_result": [f"{self.decimals:064x}"]}
        )


ObservationT = TypeVar("ObservationT", bound=Observation)


class Published:
    """A publish callable that records what it got, and can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[list[Observation]] = []
        self.fail_when: type[Observation] | None = None
        self.fail_on_call: int | None = None
        self._count = 0

    async def __call__(self, observations: Sequence[Observation]) -> None:
        self._count += 1
        if self._count == self.fail_on_call:
            raise ConnectionError("worker killed while publishing")
        if self.fail_when is not None and any(isinstance(o, self.fail_when) for o in observations):
            raise ConnectionError("broker unavailable")
        self.calls.append(list(observations))

    def of(self, kind: type[ObservationT]) -> list[ObservationT]:
        return [o for call in self.calls for o in call if isinstance(o, kind)]
