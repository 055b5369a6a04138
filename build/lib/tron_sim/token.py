"""The USDT TRC-20 contract as on mainnet: address, metadata and the ABI `getcontract` returns."""

from __future__ import annotations

from typing import Any

from tron_sim.encoding import keccak256, parse_address

USDT_ADDRESS_BASE58 = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
USDT_ADDRESS = parse_address(USDT_ADDRESS_BASE58)
# Tether's deployer on mainnet: the contract's origin_address (no key is needed or held for it).
USDT_ORIGIN = parse_address("THPvaUhoh2Qn2y9THCZML3H815hhFhn5YC")
USDT_NAME = "Tether USD"
USDT_SYMBOL = "USDT"
USDT_DECIMALS = 6

TRANSFER_TOPIC = keccak256(b"Transfer(address,address,uint256)").hex()
APPROVAL_TOPIC = keccak256(b"Approval(address,address,uint256)").hex()

SEL_TRANSFER = bytes.fromhex("a9059cbb")
SEL_TRANSFER_FROM = bytes.fromhex("23b872dd")
SEL_APPROVE = bytes.fromhex("095ea7b3")
SEL_BALANCE_OF = bytes.fromhex("70a08231")
SEL_ALLOWANCE = bytes.fromhex("dd62ed3e")
SEL_DECIMALS = bytes.fromhex("313ce567")
SEL_SYMBOL = bytes.fromhex("95d89b41")
SEL_NAME = bytes.fromhex("06fdde03")
SEL_TOTAL_SUPPLY = bytes.fromhex("18160ddd")


def _param(name: str, kind: str, indexed: bool | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if indexed:
        out["indexed"] = True
    out["name"] = name
    out["type"] = kind
    return out


def _function(
    name: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], mutability: str
) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if mutability == "View":
        entry["constant"] = True
    if inputs:
        entry["inputs"] = inputs
    entry["name"] = name
    if outputs:
        entry["outputs"] = outputs
    entry["stateMutability"] = mutability
    entry["type"] = "Function"
    return entry


# java-tron prints ABI enums capitalised ("View", "Function", "Event"); tronpy lower-cases them.
ABI: list[dict[str, Any]] = [
    _function("name", [], [_param("", "string")], "View"),
    _function("symbol", [], [_param("", "string")], "View"),
    _function("decimals", [], [_param("", "uint8")], "View"),
    _function("totalSupply", [], [_param("", "uint256")], "View"),
    _function("balanceOf", [_param("who", "address")], [_param("", "uint256")], "View"),
    _function(
        "allowance",
        [_param("owner", "address"), _param("spender", "address")],
        [_param("remaining", "uint256")],
        "View",
    ),
    _function(
        "transfer",
        [_param("_to", "address"), _param("_value", "uint256")],
        [_param("", "bool")],
        "Nonpayable",
    ),
    _function(
        "transferFrom",
        [_param("_from", "address"), _param("_to", "address"), _param("_value", "uint256")],
        [_param("", "bool")],
        "Nonpayable",
    ),
    _function(
        "approve",
        [_param("_spender", "address"), _param("_value", "uint256")],
        [_param("", "bool")],
        "Nonpayable",
    ),
    {
        "inputs": [
            _param("from", "address", indexed=True),
            _param("to", "address", indexed=True),
            _param("value", "uint256"),
        ],
        "name": "Transfer",
        "type": "Event",
    },
    {
        "inputs": [
            _param("owner", "address", indexed=True),
            _param("spender", "address", indexed=True),
            _param("value", "uint256"),
        ],
        "name": "Approval",
        "type": "Event",
    },
]
