"""The java-tron full-node HTTP API (`/wallet/*`) and its solidified twin (`/walletsolidity/*`).

Every servlet answers 200 with JSON, as java-tron does: `{}` for what does not exist, an
`{"Error": "class … : …"}` object for a request it cannot parse, and `{"code", "message"}` for a
refused transaction. POST takes a JSON body; GET takes the same fields as query parameters.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from tron_sim import constant_calls
from tron_sim.chain import Chain
from tron_sim.encoding import parse_address, selector, show_address
from tron_sim.errors import BadAddress, BroadcastRejected, MalformedTransaction
from tron_sim.execution import validate_transfer_contract
from tron_sim.render import (
    account_json,
    contract_json,
    error,
    permission_json,
    receipt_json,
)
from tron_sim.signing import recover_signer
from tron_sim.token import USDT_ADDRESS
from tron_sim.transactions import TRANSFER, TRIGGER, Transaction, from_json

CHAIN_KEY = web.AppKey("chain", Chain)

Params = dict[str, Any]
Servlet = Callable[[Chain, Params, bool, bool], Any]

JSON = "application/json"


class JavaError(Exception):
    """Rendered as java-tron's `{"Error": "class <exception> : <message>"}`."""

    def __init__(self, java_class: str, message: str) -> None:
        super().__init__(message)
        self.java_class = java_class


def _json_response(payload: Any) -> web.Response:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return web.Response(body=body, content_type=JSON)


async def read_params(request: web.Request) -> Params:
    if request.method == "GET":
        return dict(request.query)
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise JavaError("com.alibaba.fastjson.JSONException", "syntax error") from None
    if not isinstance(data, dict):
        raise JavaError("com.alibaba.fastjson.JSONException", "not a JSON object")
    return data


def _visible(params: Params) -> bool:
    value = params.get("visible", False)
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def _int_param(params: Params, name: str, default: int = 0) -> int:
    value = params.get(name, default)
    if isinstance(value, bool):
        raise JavaError("java.lang.NumberFormatException", f'For input string: "{value}"')
    try:
        return int(value)
    except (TypeError, ValueError):
        raise JavaError("java.lang.NumberFormatException", f'For input string: "{value}"') from None


def _address_param(params: Params, name: str) -> bytes:
    try:
        return parse_address(params.get(name))
    except BadAddress as exc:
        raise JavaError("java.lang.IllegalArgumentException", str(exc)) from None


def _hash_param(params: Params) -> str:
    value = params.get("value", "")
    return value.lower() if isinstance(value, str) else ""


# ----- blocks


def get_now_block(chain: Chain, params: Params, visible: bool, solid: bool) -> bytes:
    return (chain.solid if solid else chain.head).json_bytes(visible)


def get_block_by_num(chain: Chain, params: Params, visible: bool, solid: bool) -> Any:
    block = chain.block_by_number(_int_param(params, "num"), solid)
    return block.json_bytes(visible) if block else {}


def get_block_by_id(chain: Chain, params: Params, visible: bool, solid: bool) -> Any:
    block = chain.block_by_id(_hash_param(params), solid)
    return block.json_bytes(visible) if block else {}


def _block_list(blocks: list[Any], visible: bool) -> bytes:
    return b'{"block":[' + b",".join(b.json_bytes(visible) for b in blocks) + b"]}"


def get_block_by_limit_next(chain: Chain, params: Params, visible: bool, solid: bool) -> Any:
    """Blocks [startNum, endNum), at most 100; `{}` for a range java-tron refuses."""
    start, end = _int_param(params, "startNum"), _int_param(params, "endNum")
    if not (end > 0 and end > start and end - start <= 100):
        return {}
    top = chain.solid_number if solid else chain.head.number
    return _block_list(chain.blocks[max(start, 0) : min(end, top + 1)], visible)


def get_block_by_latest_num(chain: Chain, params: Params, visible: bool, solid: bool) -> Any:
    num = _int_param(params, "num")
    if not 0 < num < 100:
        return {}
    top = chain.solid_number if solid else chain.head.number
    return _block_list(chain.blocks[max(0, top - num + 1) : top + 1], visible)


# ----- transactions


def get_transaction_by_id(chain: Chain, params: Params, visible: bool, solid: bool) -> Any:
    found = chain.find_tx(_hash_param(params), solid)
    if found is None:
        return {}
    block, index = found
    return block.transactions[index].to_json(visible, block.receipts[index].contract_ret)


def get_transaction_info_by_id(chain: Chain, params: Params, visible: bool, solid: bool) -> Any:
    found = chain.find_tx(_hash_param(params), solid)
    if found is None:
        return {}
    block, index = found
    return receipt_json(block.receipts[index], visible)


def get_transaction_info_by_block_num(
    chain: Chain, params: Params, visible: bool, solid: bool
) -> Any:
    block = chain.block_by_number(_int_param(params, "num"), solid)
    return block.infos_bytes(visible) if block else []


# ----- accounts and contracts


def get_account(chain: Chain, params: Params, visible: bool, solid: bool) -> Any:
    address = _address_param(params, "address")
    balance = chain.balance("trx", address, solid)
    if balance is None:
        return {}
    created = chain.balance("created", address, solid) or 0
    free_net_usage, free_net_time = chain.free_net(address, solid)
    return account_json(address, balance, created, visible, free_net_usage, free_net_time)


TOTAL_NET_LIMIT = 43_200_000_000
TOTAL_NET_WEIGHT = 26_000_000_000
TOTAL_ENERGY_LIMIT = 180_000_000_000
TOTAL_ENERGY_WEIGHT = 19_000_000_000


def get_account_resource(chain: Chain, params: Params, visible: bool, solid: bool) -> Any:
    """api.AccountResourceMessage, proto3 zeros omitted: nothing is staked in the simulator, so
    NetUsed/NetLimit/EnergyUsed/EnergyLimit/tronPower* are 0 and absent, as java-tron prints them.
    """
    address = _address_param(params, "address")
    if chain.balance("trx", address, solid) is None:
        return {}
    fields = [
        ("freeNetUsed", chain.free_net(address, solid)[0]),
        ("freeNetLimit", chain.config.fees.free_net_limit),
        ("TotalNetLimit", TOTAL_NET_LIMIT),
        ("TotalNetWeight", TOTAL_NET_WEIGHT),
        ("TotalEnergyLimit", TOTAL_ENERGY_LIMIT),
        ("TotalEnergyWeight", TOTAL_ENERGY_WEIGHT),
    ]
    return {key: value for key, value in fields if value}


def get_contract(chain: Chain, params: Params, visible: bool, solid: bool) -> Any:
    address = _address_param(params, "value")
    return contract_json(visible) if address == USDT_ADDRESS else {}


def trigger_constant_contract(chain: Chain, params: Params, visible: bool, solid: bool) -> Any:
    owner = _address_param(params, "owner_address")
    contract = _address_param(params, "contract_address")
    if contract != USDT_ADDRESS:
        return {"result": error("CONTRACT_VALIDATE_ERROR", "Smart contract is not exist.", visible)}
    data = _call_data(params)
    result = constant_calls.call(chain, owner, data, solid)
    probe = Transaction(
        kind=TRIGGER,
        owner=owner,
        contract_address=contract,
        data=data,
        ref_block_bytes=chain.head.id[6:8],
        ref_block_hash=chain.head.id[8:16],
        expiration=chain.head.timestamp + 60_000,
        timestamp=int(time.time() * 1000),
    )
    outcome: dict[str, Any] = (
        {"result": True}
        if result.ok
        else error("CONTRACT_EXE_ERROR", "REVERT opcode executed", visible)
    )
    return {
        "result": outcome,
        "energy_used": result.energy,
        "constant_result": [result.output],
        "transaction": {"ret": [{}], "visible": visible, **probe.to_json(visible)},
    }


def _call_data(params: Params) -> bytes:
    try:
        if params.get("function_selector"):
            return selector(str(params["function_selector"])) + bytes.fromhex(
                str(params.get("parameter") or "")
            )
        return bytes.fromhex(str(params.get("data") or ""))
    except ValueError:
        raise JavaError("java.lang.IllegalArgumentException", "INVALID hex String") from None


# ----- building transactions (java-tron's node builds them; the client signs the txID)

CONTRACT_VALIDATE_EXCEPTION = "org.tron.core.exception.ContractValidateException"


def _permission_id(params: Params) -> int:
    """Util.setTransactionPermissionId: `Permission_id` > 0 goes on the contract."""
    return _int_param(params, "Permission_id") if "Permission_id" in params else 0


def _built(tx: Transaction, visible: bool) -> dict[str, Any]:
    """Util.printCreateTransaction: the transaction with `visible`, no signature, no `ret`."""
    return {"visible": visible, **tx.to_json(visible)}


def create_transaction(chain: Chain, params: Params, visible: bool, solid: bool) -> Any:
    """TransferServlet (`wallet/createtransaction`): a TRX transfer, validated by the
    TransferActuator against the node's pending state; a refusal is `{"Error": …}`."""
    tx = Transaction(
        kind=TRANSFER,
        owner=_optional_address(params, "owner_address"),
        to=_optional_address(params, "to_address"),
        amount=_int_param(params, "amount"),
        permission_id=_permission_id(params),
        **chain.node_reference(),
    )
    try:
        validate_transfer_contract(chain.pool_state, tx, chain.config.fees)
    except BroadcastRejected as exc:
        raise JavaError(CONTRACT_VALIDATE_EXCEPTION, exc.message) from None
    return _built(tx, visible)


def trigger_smart_contract(chain: Chain, params: Params, visible: bool, solid: bool) -> Any:
    """TriggerSmartContractServlet (`wallet/triggersmartcontract`): a contract call built as a
    transaction, not executed (owner, balance and fee limit are checked at broadcast). A view
    function is run as a constant call instead, as java-tron does. Refusals are a `result`
    with `code` and `message` (hex, or text when visible) and no transaction."""
    try:
        for name in ("owner_address", "contract_address", "function_selector"):
            if params.get(name) in (None, ""):
                raise JavaError("java.security.InvalidParameterException", f"{name} isn't set.")
        owner = _address_param(params, "owner_address")
        contract = _address_param(params, "contract_address")
        data = _call_data(params)
        call_value, call_token_value = (
            _int_param(params, "call_value"),
            _int_param(params, "call_token_value"),
        )
        token_id, fee_limit = _int_param(params, "token_id"), _int_param(params, "fee_limit")
        permission_id = _permission_id(params)
    except JavaError as exc:
        # The servlet's own rendering: `e.getClass() + " : " + message`, with " turned into '.
        text = str(exc).replace('"', "'")
        message = f"class {exc.java_class} : {text}"
        return {"result": error("OTHER_ERROR", message, visible)}
    if contract != USDT_ADDRESS:
        message = "No contract or not a valid smart contract"
        return {"result": error("CONTRACT_VALIDATE_ERROR", message, visible)}
    if data[:4] in constant_calls.VIEW_SELECTORS:
        return trigger_constant_contract(chain, params, visible, solid)
    tx = Transaction(
        kind=TRIGGER,
        owner=owner,
        contract_address=contract,
        data=data,
        call_value=call_value,
        call_token_value=call_token_value,
        token_id=token_id,
        fee_limit=fee_limit,
        permission_id=permission_id,
        **chain.node_reference(),
    )
    return {"result": {"result": True}, "transaction": _built(tx, visible)}


def _optional_address(params: Params, name: str) -> bytes:
    """An address field JsonFormat merges: absent or empty leaves it empty (the actuator then
    says which address is invalid); a malformed one fails the request."""
    if params.get(name) in (None, ""):
        return b""
    return _address_param(params, name)


# ----- signing and broadcast


def get_sign_weight(chain: Chain, params: Params, visible: bool, solid: bool) -> Any:
    """TransactionUtil.getTransactionSignWeight for a single-key (default permission) account."""
    try:
        tx = from_json(params)
    except MalformedTransaction as exc:
        return {"result": {"code": "OTHER_ERROR", "message": str(exc)}}
    out: dict[str, Any] = {}
    result: dict[str, Any]
    if not chain.ledger.exists(tx.owner):
        result = {"code": "PERMISSION_ERROR", "message": "Account does not exist!"}
    else:
        out["permission"] = permission_json(tx.owner, visible)
        approved = [s for s in (recover_signer(tx.digest, sig) for sig in tx.signatures) if s]
        approved = [s for s in approved if s == tx.owner]
        if tx.signatures:
            out["approved_list"] = [show_address(s, visible) for s in approved]
            out["current_weight"] = len(approved[:1])
        result = {"code": "ENOUGH_PERMISSION" if approved else "NOT_ENOUGH_PERMISSION"}
    out["result"] = result
    out["transaction"] = {
        "result": {"result": True},
        "txid": tx.txid,
        "transaction": tx.to_json(visible),
    }
    return out


def broadcast_transaction(chain: Chain, params: Params, visible: bool, solid: bool) -> Any:
    try:
        tx = from_json(params)
    except MalformedTransaction as exc:
        return error("OTHER_ERROR", str(exc), visible, txid="")
    try:
        chain.broadcast(tx)
    except BroadcastRejected as exc:
        return error(exc.code, exc.message, visible, txid=tx.txid)
    return {"result": True, "txid": tx.txid}


# ----- node


def get_node_info(chain: Chain, params: Params, visible: bool, solid: bool) -> Any:
    head, solid_block = chain.head, chain.solid
    return {
        "activeConnectCount": 0,
        "beginSyncNum": head.number,
        "block": f"Num:{head.number},ID:{head.id_hex}",
        "cheatWitnessInfoMap": {},
        "configNodeInfo": {
            "activeNodeSize": 0,
            "allowAdaptiveEnergy": 0,
            "allowCreationOfContracts": 1,
            "backupListenPort": 10001,
            "backupMemberSize": 0,
            "backupPriority": 8,
            "codeVersion": "4.8.0",
            "dbVersion": 2,
            "discoverEnable": False,
            "listenPort": 18888,
            "maxConnectCount": 30,
            "p2pVersion": "11111",
            "versionNum": "19000",
        },
        "currentConnectCount": 0,
        "machineInfo": {"cpuCount": 1, "javaVersion": "1.8.0", "osName": "Linux", "threadCount": 1},
        "passiveConnectCount": 0,
        "peerList": [],
        "solidityBlock": f"Num:{solid_block.number},ID:{solid_block.id_hex}",
        "totalFlow": 0,
    }


CHAIN_PARAMETERS: list[tuple[str, int]] = [
    ("getMaintenanceTimeInterval", 21_600_000),
    ("getAccountUpgradeCost", 9_999_000_000),
    ("getCreateAccountFee", 100_000),
    ("getTransactionFee", 1_000),
    ("getAssetIssueFee", 1_024_000_000),
    ("getWitnessPayPerBlock", 8_000_000),
    ("getWitnessStandbyAllowance", 115_200_000_000),
    ("getCreateNewAccountFeeInSystemContract", 1_000_000),
    ("getCreateNewAccountBandwidthRate", 1),
    ("getAllowCreationOfContracts", 1),
    ("getRemoveThePowerOfTheGr", -1),
    ("getEnergyFee", 0),  # configured: see CONFIGURED_PARAMETERS
    ("getExchangeCreateFee", 1_024_000_000),
    ("getMaxCpuTimeOfOneTx", 80),
    ("getAllowMultiSign", 1),
    ("getAllowTvmTransferTrc10", 1),
    ("getTotalEnergyCurrentLimit", 180_000_000_000),
    ("getAllowTvmConstantinople", 1),
    ("getAllowTvmSolidity059", 1),
    ("getMaxFeeLimit", 15_000_000_000),
    ("getFreeNetLimit", 600),
    ("getTotalNetLimit", 43_200_000_000),
    ("getAllowTvmLondon", 1),
    ("getUnfreezeDelayDays", 14),
]


# Parameters whose value is the simulator's FeeSchedule (the one the chain charges with).
CONFIGURED_PARAMETERS = {
    "getCreateAccountFee": "create_account_net_fee",
    "getTransactionFee": "transaction_fee",
    "getCreateNewAccountFeeInSystemContract": "create_account_fee",
    "getEnergyFee": "energy_fee",
    "getMaxFeeLimit": "max_fee_limit",
    "getFreeNetLimit": "free_net_limit",
}


def get_chain_parameters(chain: Chain, params: Params, visible: bool, solid: bool) -> Any:
    entries: list[dict[str, Any]] = []
    for key, default in CHAIN_PARAMETERS:
        attribute = CONFIGURED_PARAMETERS.get(key)
        value = default if attribute is None else getattr(chain.config.fees, attribute)
        entries.append({"key": key, "value": value} if value else {"key": key})
    return {"chainParameter": entries}


# ----- routing

FULL_NODE: dict[str, Servlet] = {
    "getnodeinfo": get_node_info,
    "getnowblock": get_now_block,
    "getblockbynum": get_block_by_num,
    "getblockbyid": get_block_by_id,
    "getblockbylimitnext": get_block_by_limit_next,
    "getblockbylatestnum": get_block_by_latest_num,
    "gettransactionbyid": get_transaction_by_id,
    "gettransactioninfobyid": get_transaction_info_by_id,
    "gettransactioninfobyblocknum": get_transaction_info_by_block_num,
    "getaccount": get_account,
    "getaccountresource": get_account_resource,
    "getcontract": get_contract,
    "triggerconstantcontract": trigger_constant_contract,
    "triggersmartcontract": trigger_smart_contract,
    "createtransaction": create_transaction,
    "getsignweight": get_sign_weight,
    "broadcasttransaction": broadcast_transaction,
    "getchainparameters": get_chain_parameters,
}
SOLIDITY = {
    name: FULL_NODE[name]
    for name in (
        "getnowblock",
        "getblockbynum",
        "getblockbyid",
        "getblockbylimitnext",
        "getblockbylatestnum",
        "gettransactionbyid",
        "gettransactioninfobyid",
        "gettransactioninfobyblocknum",
        "getaccount",
        "triggerconstantcontract",
        "getnodeinfo",
    )
}
POST_ONLY = {
    "broadcasttransaction",
    "getsignweight",
    "triggerconstantcontract",
    "triggersmartcontract",
    "createtransaction",
}


def _handler(servlet: Servlet, solid: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            params = await read_params(request)
            payload = servlet(request.app[CHAIN_KEY], params, _visible(params), solid)
        except JavaError as exc:
            payload = {"Error": f"class {exc.java_class} : {exc}"}
        return _json_response(payload)

    return handle


def add_routes(app: web.Application) -> None:
    apis = (("wallet", FULL_NODE, False), ("walletsolidity", SOLIDITY, True))
    for prefix, servlets, solid in apis:
        for name, servlet in servlets.items():
            handler = _handler(servlet, solid)
            app.router.add_post(f"/{prefix}/{name}", handler)
            if name not in POST_ONLY:
                app.router.add_get(f"/{prefix}/{name}", handler)
