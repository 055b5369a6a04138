"""Transactions built the way tronpy builds them: raw_data JSON, txID from getsignweight, signed."""

from __future__ import annotations

from typing import Any

from tronpy.keys import PrivateKey

from tests.component.tron_sim.conftest import Sim

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
USDT_HEX = "41a614f803b6fd780986a42c78ec9c7f77e6ded13c"


def word(value: int | str) -> str:
    if isinstance(value, str):  # a 41… hex address
        return value[2:].rjust(64, "0")
    return format(value, "064x")


async def raw_data(sim: Sim, contract: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    info = await sim.call("/wallet/getnodeinfo")
    solid_id = info["solidityBlock"].split(",ID:", 1)[1]
    now = sim.clock()
    raw = {
        "contract": [contract],
        "timestamp": now,
        "expiration": now + 60_000,
        "ref_block_bytes": solid_id[12:16],
        "ref_block_hash": solid_id[16:32],
    }
    if contract["type"] == "TriggerSmartContract":
        raw["fee_limit"] = 30_000_000
    raw.update(overrides)
    return raw


def usdt_transfer(owner_hex: str, to_hex: str, amount: int) -> dict[str, Any]:
    return {
        "parameter": {
            "value": {
                "owner_address": owner_hex,
                "contract_address": USDT_HEX,
                "data": "a9059cbb" + word(to_hex) + word(amount),
                "call_token_value": 0,
                "call_value": 0,
                "token_id": 0,
            },
            "type_url": "type.googleapis.com/protocol.TriggerSmartContract",
        },
        "type": "TriggerSmartContract",
    }


def trx_transfer(owner_hex: str, to_hex: str, amount: int) -> dict[str, Any]:
    return {
        "parameter": {
            "value": {"owner_address": owner_hex, "to_address": to_hex, "amount": amount},
            "type_url": "type.googleapis.com/protocol.TransferContract",
        },
        "type": "TransferContract",
    }


async def signed(sim: Sim, raw: dict[str, Any], key: PrivateKey | None) -> dict[str, Any]:
    weight = await sim.call(
        "/wallet/getsignweight", {"txID": "", "raw_data": raw, "signature": [], "permission": None}
    )
    txid = weight["transaction"]["transaction"]["txID"]
    signatures = [key.sign_msg_hash(bytes.fromhex(txid)).hex()] if key else []
    return {"txID": txid, "raw_data": raw, "signature": signatures, "permission": None}
