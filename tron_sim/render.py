"""JSON java-tron prints for receipts, accounts, contracts and errors, honouring `visible`."""

from __future__ import annotations

from typing import Any

from tron_sim.encoding import base58check, sha256, show_address
from tron_sim.execution import Receipt
from tron_sim.token import ABI, USDT_ADDRESS, USDT_NAME, USDT_ORIGIN

# Stands in for the hash of the contract code, which the simulator does not have.
CODE_HASH = sha256(b"crypto-checkout tron simulator USDT code").hex()

# The operations bitmap java-tron gives a new account's default active permission.
ACTIVE_OPERATIONS = "7fff1fc0033e03" + "00" * 25


def text_field(message: str, visible: bool) -> str:
    """A bytes field java-tron prints as text when visible and as hex otherwise (Return.message,
    TransactionInfo.resMessage)."""
    return message if visible else message.encode().hex()


def error(code: str, message: str, visible: bool, **extra: Any) -> dict[str, Any]:
    """GrpcAPI.Return as the broadcast servlet prints it: `result` false is a default, so absent."""
    return {"code": code, **extra, "message": text_field(message, visible)}


def receipt_json(receipt: Receipt, visible: bool) -> dict[str, Any]:
    """protocol.TransactionInfo.

    `log[].address` holds the contract's 20 bytes without 41: hex when not visible, and, when
    visible, java-tron's encode58Check of those 20 bytes — a base58 string that is NOT the
    contract's `T…` address (java-tron behaviour, see wallet-cli issue 470).
    """
    out: dict[str, Any] = {"id": receipt.txid}
    if receipt.fee:
        out["fee"] = receipt.fee
    out["blockNumber"] = receipt.block_number
    out["blockTimeStamp"] = receipt.block_timestamp
    out["contractResult"] = [receipt.contract_result.hex()]
    if receipt.contract_address:
        out["contract_address"] = show_address(receipt.contract_address, visible)
    resource: dict[str, Any] = {}
    if receipt.energy_fee:
        resource["energy_fee"] = receipt.energy_fee
    if receipt.energy_usage_total:
        resource["energy_usage_total"] = receipt.energy_usage_total
    if receipt.net_usage:
        resource["net_usage"] = receipt.net_usage
    if receipt.net_fee:
        resource["net_fee"] = receipt.net_fee
    if receipt.receipt_result is not None:
        resource["result"] = receipt.receipt_result
    out["receipt"] = resource
    if receipt.logs:
        out["log"] = [
            {
                "address": (base58check(log.address[1:]) if visible else log.address[1:].hex()),
                "topics": list(log.topics),
                "data": log.data,
            }
            for log in receipt.logs
        ]
    if receipt.failed:
        out["result"] = "FAILED"
        out["resMessage"] = text_field(receipt.res_message, visible)
    return out


def permission_json(address: bytes, visible: bool) -> dict[str, Any]:
    """The default owner permission of an account: one key, threshold 1."""
    return {
        "permission_name": "owner",
        "threshold": 1,
        "keys": [{"address": show_address(address, visible), "weight": 1}],
    }


def active_permission_json(address: bytes, visible: bool) -> dict[str, Any]:
    return {
        "type": "Active",
        "id": 2,
        "permission_name": "active",
        "threshold": 1,
        "operations": ACTIVE_OPERATIONS,
        "keys": [{"address": show_address(address, visible), "weight": 1}],
    }


def account_json(
    address: bytes,
    balance: int,
    created: int,
    visible: bool,
    free_net_usage: int = 0,
    free_net_time: int = 0,
) -> dict[str, Any]:
    """protocol.Account as wallet/getaccount prints it: `free_net_usage` is recovered to the
    block read at, and `latest_consume_free_time` in ms (java-tron's getAccount converts both)."""
    out: dict[str, Any] = {"address": show_address(address, visible)}
    if address == USDT_ADDRESS:
        out["account_name"] = USDT_NAME if visible else USDT_NAME.encode().hex()
        out["type"] = "Contract"
    if balance:
        out["balance"] = balance
    out["create_time"] = created
    if free_net_usage:
        out["free_net_usage"] = free_net_usage
    if free_net_time:
        out["latest_consume_free_time"] = free_net_time
    if address != USDT_ADDRESS:
        out["owner_permission"] = permission_json(address, visible)
        out["active_permission"] = [active_permission_json(address, visible)]
    out["frozenV2"] = [{}, {"type": "ENERGY"}, {"type": "TRON_POWER"}]
    return out


def contract_json(visible: bool) -> dict[str, Any]:
    """wallet/getcontract for USDT (bytecode left out: the simulator runs no TVM)."""
    return {
        "origin_address": show_address(USDT_ORIGIN, visible),
        "contract_address": show_address(USDT_ADDRESS, visible),
        "abi": {"entrys": ABI},
        "bytecode": "",
        "consume_user_resource_percent": 30,
        "name": "TetherToken",
        "origin_energy_limit": 10_000_000,
        "code_hash": CODE_HASH,
    }
