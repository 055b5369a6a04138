"""The simulator's own control API under `/sim/`, for tests and for a person trying the platform.

Everything here goes through real, signed transactions from keys the simulator holds (the faucet,
or a wallet derived from a label), so the platform sees ordinary USDT and TRX transfers in blocks.
The platform itself must never call these endpoints: a real node has none of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from tron_sim.blocks import Block
from tron_sim.chain import Chain
from tron_sim.encoding import format_amount, parse_address, parse_decimal_amount, to_base58
from tron_sim.errors import BadAddress, BadAmount, BadRequest, BroadcastRejected
from tron_sim.http_api import CHAIN_KEY
from tron_sim.producer import BlockProducer
from tron_sim.signing import Signer, labelled_wallet
from tron_sim.token import USDT_ADDRESS_BASE58, USDT_DECIMALS

PRODUCER_KEY = web.AppKey("producer", BlockProducer)
TRX_DECIMALS = 6
MAX_BATCH = 100_000

Body = dict[str, Any]


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


async def _body(request: web.Request) -> Body:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("body", "is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("body", "must be a JSON object")
    return data


def _address(body: Body, field: str) -> bytes:
    try:
        return parse_address(body.get(field))
    except BadAddress as exc:
        raise BadRequest(field, str(exc)) from None


def _flag(body: Body, field: str, default: bool) -> bool:
    value = body.get(field, default)
    if not isinstance(value, bool):
        raise BadRequest(field, "must be true or false")
    return value


def _count(body: Body, field: str, default: int, low: int, high: int) -> int:
    value = body.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(field, f"must be an integer from {low} to {high}")
    return value


def _source(chain: Chain, body: Body) -> Signer:
    """`from`: absent for the faucet, else the label of a simulator-held wallet."""
    label = body.get("from")
    if label is None:
        return chain.faucet
    if not isinstance(label, str) or not label.strip():
        raise BadRequest("from", "must be a wallet label (a non-empty string)")
    return labelled_wallet(label)


def _block_summary(block: Block) -> dict[str, Any]:
    return {
        "number": block.number,
        "id": block.id_hex,
        "transactions": [tx.txid for tx in block.transactions],
    }


def _status(chain: Chain, producer: BlockProducer) -> dict[str, Any]:
    faucet = chain.faucet.address
    return {
        "head": {
            "number": chain.head.number,
            "id": chain.head.id_hex,
            "timestamp": chain.head.timestamp,
        },
        "solidified": {"number": chain.solid_number, "id": chain.solid.id_hex},
        "solidify_depth": chain.config.solidify_depth,
        "paused": producer.paused,
        "manual": producer.manual,
        "block_interval": producer.interval,
        "pending": len(chain.pending),
        "fail_next": chain.fail_next,
        "faucet": {
            "address": to_base58(faucet),
            "trx": format_amount(chain.ledger.get("trx", faucet), TRX_DECIMALS),
            "usdt": format_amount(chain.ledger.get("token", faucet), USDT_DECIMALS),
        },
        "usdt_contract": USDT_ADDRESS_BASE58,
        "energy_fee": chain.config.fees.energy_fee,
        "transaction_fee": chain.config.fees.transaction_fee,
        "free_net_limit": chain.config.fees.free_net_limit,
    }


def _submit(chain: Chain, signer: Signer, **kwargs: Any) -> str:
    tx = chain.build_signed(signer, **kwargs)
    chain.submit_own(tx)
    return tx.txid


# ----- handlers


async def status(request: web.Request, chain: Chain, producer: BlockProducer) -> Any:
    return _status(chain, producer)


async def fund(request: web.Request, chain: Chain, producer: BlockProducer) -> Any:
    body = await _body(request)
    if "wallet" in body:
        address = _source(chain, {"from": body["wallet"]}).address
    else:
        address = _address(body, "address")
    if "trx" not in body and "usdt" not in body:
        raise BadRequest("trx/usdt", "give at least one amount to fund")
    txids = []
    if "trx" in body:
        trx = parse_decimal_amount(body["trx"], TRX_DECIMALS, "trx")
        txids.append(_submit(chain, chain.faucet, to=address, trx=trx))
    if "usdt" in body:
        usdt = parse_decimal_amount(body["usdt"], USDT_DECIMALS, "usdt")
        txids.append(_submit(chain, chain.faucet, to=address, usdt=usdt))
    out: dict[str, Any] = {"address": to_base58(address), "txids": txids}
    if _flag(body, "mine", True):
        out["block"] = _block_summary(chain.produce_block())
    return out


async def transfer(request: web.Request, chain: Chain, producer: BlockProducer) -> Any:
    body = await _body(request)
    signer = _source(chain, body)
    to = _address(body, "to")
    amount = parse_decimal_amount(body.get("amount"), USDT_DECIMALS, "amount")
    txid = _submit(chain, signer, to=to, usdt=amount, forced_fail=_flag(body, "fail", False))
    out: dict[str, Any] = {
        "txid": txid,
        "from": to_base58(signer.address),
        "to": to_base58(to),
        "amount": format_amount(amount, USDT_DECIMALS),
    }
    if _flag(body, "mine", False):
        out["block"] = _block_summary(chain.produce_block())
    return out


async def transfers(request: web.Request, chain: Chain, producer: BlockProducer) -> Any:
    """Many faucet (or `from`) USDT transfers; with `mine`, `per_block` of them per block."""
    body = await _body(request)
    signer = _source(chain, body)
    items = body.get("transfers")
    if not isinstance(items, list) or not items or len(items) > MAX_BATCH:
        raise BadRequest("transfers", f"must be a list of 1 to {MAX_BATCH} {{to, amount}} objects")
    planned = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(f"transfers[{i}]", "must be an object {to, amount}")
        to = _address(item, "to") if "to" in item else _address({}, f"transfers[{i}].to")
        try:
            amount = parse_decimal_amount(item.get("amount"), USDT_DECIMALS, "amount")
        except BadAmount as exc:
            raise BadRequest(f"transfers[{i}].amount", str(exc)) from None
        planned.append((to, amount, _flag(item, "fail", False)))
    mine = _flag(body, "mine", False)
    per_block = _count(body, "per_block", len(planned), 1, MAX_BATCH)
    txids: list[str] = []
    blocks: list[dict[str, Any]] = []
    for start in range(0, len(planned), per_block):
        for to, amount, fail in planned[start : start + per_block]:
            txids.append(_submit(chain, signer, to=to, usdt=amount, forced_fail=fail))
        if mine:
            block = chain.produce_block()
            blocks.append(
                {
                    "number": block.number,
                    "id": block.id_hex,
                    "transactions": len(block.transactions),
                }
            )
    out: dict[str, Any] = {"txids": txids}
    if mine:
        out["blocks"] = blocks
    return out


async def mine(request: web.Request, chain: Chain, producer: BlockProducer) -> Any:
    body = await _body(request)
    count = _count(body, "blocks", 1, 1, 10_000)
    blocks = chain.mine(count)
    return {
        "head": chain.head.number,
        "solidified": chain.solid_number,
        "blocks": [_block_summary(b) for b in blocks[:100]],
    }


async def pause(request: web.Request, chain: Chain, producer: BlockProducer) -> Any:
    producer.paused = True
    return _status(chain, producer)


async def resume(request: web.Request, chain: Chain, producer: BlockProducer) -> Any:
    producer.paused = False
    return _status(chain, producer)


async def fail_next(request: web.Request, chain: Chain, producer: BlockProducer) -> Any:
    body = await _body(request)
    chain.fail_next += _count(body, "count", 1, 1, 1_000_000)
    return {"fail_next": chain.fail_next}


async def reorg(request: web.Request, chain: Chain, producer: BlockProducer) -> Any:
    body = await _body(request)
    depth = _count(body, "depth", 1, 1, 1_000_000)
    drop = body.get("drop", [])
    if not isinstance(drop, list) or not all(isinstance(t, str) for t in drop):
        raise BadRequest("drop", "must be a list of transaction ids")
    delay = body.get("delay", {})
    if not isinstance(delay, dict) or not all(
        isinstance(k, int) and not isinstance(k, bool) for k in delay.values()
    ):
        raise BadRequest("delay", "must map transaction ids to a number of blocks")
    new_blocks = body.get("blocks")
    if new_blocks is not None:
        new_blocks = _count(body, "blocks", depth, 1, 10_000)
    result = chain.reorg(depth, drop=drop, delay=delay, new_blocks=new_blocks)
    return {
        "old_blocks": result.old_ids,
        "new_blocks": result.new_ids,
        "dropped": result.dropped,
        "returned_to_pool": result.returned_to_pool,
        "lost": result.lost,
        "head": chain.head.number,
        "solidified": chain.solid_number,
    }


async def wallet(request: web.Request, chain: Chain, producer: BlockProducer) -> Any:
    label = request.match_info["label"]
    return _balances(chain, labelled_wallet(label).address) | {"label": label}


async def balance(request: web.Request, chain: Chain, producer: BlockProducer) -> Any:
    return _balances(chain, _address(dict(request.query), "address"))


def _balances(chain: Chain, address: bytes) -> dict[str, Any]:
    return {
        "address": to_base58(address),
        "activated": chain.ledger.exists(address),
        "trx": format_amount(chain.ledger.get("trx", address), TRX_DECIMALS),
        "usdt": format_amount(chain.ledger.get("token", address), USDT_DECIMALS),
    }


Handler = Callable[[web.Request, Chain, BlockProducer], Awaitable[Any]]


def _wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            payload = await handler(request, request.app[CHAIN_KEY], request.app[PRODUCER_KEY])
        except (BadRequest, BadAmount) as exc:
            return _json({"error": str(exc), "field": exc.field}, status=400)
        except BroadcastRejected as exc:
            return _json({"error": exc.message, "code": exc.code}, status=422)
        return _json(payload)

    return handle


def add_routes(app: web.Application) -> None:
    app.router.add_get("/sim/status", _wrap(status))
    app.router.add_get("/sim/balance", _wrap(balance))
    app.router.add_get("/sim/wallet/{label}", _wrap(wallet))
    for path, handler in (
        ("fund", fund),
        ("transfer", transfer),
        ("transfers", transfers),
        ("mine", mine),
        ("pause", pause),
        ("resume", resume),
        ("fail-next", fail_next),
        ("reorg", reorg),
    ):
        app.router.add_post(f"/sim/{path}", _wrap(handler))
