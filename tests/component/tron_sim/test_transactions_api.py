"""Signing, broadcast checks, receipts, logs and constant calls, as a java-tron client sees them."""

from __future__ import annotations

import hashlib

import pytest
from Crypto.Hash import keccak

from tests.component.tron_sim.client_tx import (
    USDT,
    raw_data,
    signed,
    trx_transfer,
    usdt_transfer,
    word,
)
from tests.component.tron_sim.conftest import Sim, Wallet, new_wallet
from tron_sim.encoding import base58check

pytestmark = pytest.mark.component


def text(message_hex: str) -> str:
    return bytes.fromhex(message_hex).decode()


async def test_sign_weight_txid_is_sha256_of_raw_data_protobuf(sim: Sim, funded: Wallet) -> None:
    raw = await raw_data(sim, usdt_transfer(funded.hex, new_wallet().hex, 5))
    weight = await sim.call("/wallet/getsignweight", {"raw_data": raw, "signature": []})

    inner = weight["transaction"]["transaction"]
    assert inner["txID"] == hashlib.sha256(bytes.fromhex(inner["raw_data_hex"])).hexdigest()
    assert weight["transaction"]["result"] == {"result": True}
    assert weight["permission"]["keys"] == [{"address": funded.hex, "weight": 1}]
    assert weight["result"]["code"] == "NOT_ENOUGH_PERMISSION"


async def test_txid_matches_tronpy_offline_protobuf_encoding(sim: Sim, funded: Wallet) -> None:
    pytest.importorskip("google.protobuf", reason="tronpy's offline txID needs protobuf")
    from tronpy import proto

    for contract in (
        usdt_transfer(funded.hex, new_wallet().hex, 123_456),
        trx_transfer(funded.hex, new_wallet().hex, 7),
    ):
        raw = await raw_data(sim, contract)
        body = await signed(sim, raw, None)
        assert body["txID"] == proto.calculate_txid_from_raw_data(raw)


async def test_sign_weight_for_an_unactivated_owner_has_no_permission(sim: Sim) -> None:
    stranger = new_wallet()
    raw = await raw_data(sim, usdt_transfer(stranger.hex, new_wallet().hex, 5))
    weight = await sim.call("/wallet/getsignweight", {"raw_data": raw, "signature": []})

    assert "permission" not in weight
    assert weight["result"] == {"code": "PERMISSION_ERROR", "message": "Account does not exist!"}
    assert len(weight["transaction"]["transaction"]["txID"]) == 64


async def test_broadcast_then_block_gives_receipt_with_transfer_log(
    sim: Sim, funded: Wallet
) -> None:
    recipient = new_wallet()
    raw = await raw_data(sim, usdt_transfer(funded.hex, recipient.hex, 2_500_000))
    body = await signed(sim, raw, funded.key)
    sent = await sim.call("/wallet/broadcasttransaction", body)
    assert sent == {"result": True, "txid": body["txID"]}
    assert await sim.call("/wallet/gettransactioninfobyid", {"value": body["txID"]}) == {}

    await sim.mine()
    info = await sim.call("/wallet/gettransactioninfobyid", {"value": body["txID"]})
    seen = await sim.call(
        "/wallet/gettransactioninfobyid", {"value": body["txID"], "visible": True}
    )

    assert info["receipt"]["result"] == "SUCCESS"
    assert info["receipt"]["energy_usage_total"] == 130_285  # a recipient with no USDT yet
    assert info["fee"] == info["receipt"]["energy_fee"] == 130_285 * 100
    assert info["contract_address"] == "41a614f803b6fd780986a42c78ec9c7f77e6ded13c"
    assert info["contractResult"] == [word(1)]
    (log,) = info["log"]
    assert log["address"] == "a614f803b6fd780986a42c78ec9c7f77e6ded13c"
    transfer_topic = keccak.new(data=b"Transfer(address,address,uint256)", digest_bits=256)
    assert log["topics"] == [transfer_topic.hexdigest(), word(funded.hex), word(recipient.hex)]
    assert log["data"] == word(2_500_000)
    assert seen["contract_address"] == USDT
    # java-tron prints the log's 20-byte address through encode58Check: not the T… address.
    assert seen["log"][0]["address"] == base58check(bytes.fromhex(log["address"]))
    assert seen["log"][0]["address"] != USDT


async def test_broadcast_refuses_a_signature_by_another_key(sim: Sim, funded: Wallet) -> None:
    raw = await raw_data(sim, usdt_transfer(funded.hex, new_wallet().hex, 1))
    body = await signed(sim, raw, new_wallet().key)
    refused = await sim.call("/wallet/broadcasttransaction", body)

    assert refused["code"] == "SIGERROR"
    assert "is signed by" in text(refused["message"])
    assert refused["txid"] == body["txID"]


async def test_broadcast_refuses_a_missing_signature(sim: Sim, funded: Wallet) -> None:
    raw = await raw_data(sim, usdt_transfer(funded.hex, new_wallet().hex, 1))
    refused = await sim.call("/wallet/broadcasttransaction", await signed(sim, raw, None))
    assert refused["code"] == "SIGERROR"


async def test_broadcast_message_is_text_when_visible(sim: Sim, funded: Wallet) -> None:
    raw = await raw_data(sim, usdt_transfer(funded.hex, new_wallet().hex, 1))
    body = await signed(sim, raw, None) | {"visible": True}
    refused = await sim.call("/wallet/broadcasttransaction", body)
    assert refused["message"] == "Validate signature error: miss sig or contract"


async def test_broadcast_refuses_an_unknown_reference_block(sim: Sim, funded: Wallet) -> None:
    raw = await raw_data(
        sim, usdt_transfer(funded.hex, new_wallet().hex, 1), ref_block_hash="00" * 8
    )
    refused = await sim.call("/wallet/broadcasttransaction", await signed(sim, raw, funded.key))
    assert refused["code"] == "TAPOS_ERROR"


async def test_broadcast_refuses_an_expired_transaction(sim: Sim, funded: Wallet) -> None:
    raw = await raw_data(
        sim, usdt_transfer(funded.hex, new_wallet().hex, 1), expiration=sim.clock() - 1
    )
    refused = await sim.call("/wallet/broadcasttransaction", await signed(sim, raw, funded.key))
    assert refused["code"] == "TRANSACTION_EXPIRATION_ERROR"


async def test_broadcast_refuses_a_duplicate(sim: Sim, funded: Wallet) -> None:
    raw = await raw_data(sim, usdt_transfer(funded.hex, new_wallet().hex, 1))
    body = await signed(sim, raw, funded.key)
    assert (await sim.call("/wallet/broadcasttransaction", body))["result"] is True
    refused = await sim.call("/wallet/broadcasttransaction", body)
    assert refused["code"] == "DUP_TRANSACTION_ERROR"


async def test_trx_overdraft_is_refused_at_broadcast(sim: Sim, funded: Wallet) -> None:
    raw = await raw_data(sim, trx_transfer(funded.hex, new_wallet().hex, 101_000_000))
    refused = await sim.call("/wallet/broadcasttransaction", await signed(sim, raw, funded.key))
    assert refused["code"] == "CONTRACT_VALIDATE_ERROR"
    assert "balance is not sufficient" in text(refused["message"])


async def test_usdt_overdraft_is_included_as_a_revert_without_log(sim: Sim, funded: Wallet) -> None:
    raw = await raw_data(sim, usdt_transfer(funded.hex, new_wallet().hex, 51_000_000))
    body = await signed(sim, raw, funded.key)
    await sim.call("/wallet/broadcasttransaction", body)
    await sim.mine()

    info = await sim.call("/wallet/gettransactioninfobyid", {"value": body["txID"]})
    tx = await sim.call("/wallet/gettransactionbyid", {"value": body["txID"]})
    assert info["result"] == "FAILED"
    assert info["receipt"]["result"] == "REVERT"
    assert text(info["resMessage"]) == "REVERT opcode executed"
    assert "log" not in info
    assert tx["ret"] == [{"contractRet": "REVERT"}]
    assert sim.chain.ledger.get("token", bytes.fromhex(funded.hex)) == 50_000_000


async def test_too_low_fee_limit_runs_out_of_energy(sim: Sim, funded: Wallet) -> None:
    raw = await raw_data(
        sim, usdt_transfer(funded.hex, new_wallet().hex, 1_000_000), fee_limit=1_000_000
    )
    body = await signed(sim, raw, funded.key)
    await sim.call("/wallet/broadcasttransaction", body)
    await sim.mine()

    info = await sim.call("/wallet/gettransactioninfobyid", {"value": body["txID"]})
    assert info["receipt"]["result"] == "OUT_OF_ENERGY"
    assert info["fee"] == 1_000_000
    assert "log" not in info


async def test_constant_calls_read_usdt(sim: Sim, funded: Wallet) -> None:
    async def call(selector: str, parameter: str = "", path: str = "wallet") -> dict[str, object]:
        return await sim.call(
            f"/{path}/triggerconstantcontract",
            {
                "owner_address": funded.address,
                "contract_address": USDT,
                "function_selector": selector,
                "parameter": parameter,
                "visible": True,
            },
        )

    balance = await call("balanceOf(address)", word(funded.hex))
    assert balance["result"] == {"result": True}
    assert balance["constant_result"] == [word(50_000_000)]
    assert balance["transaction"]["visible"] is True
    assert (await call("decimals()"))["constant_result"] == [word(6)]
    symbol = bytes.fromhex((await call("symbol()"))["constant_result"][0])
    assert symbol[64:68] == b"USDT"
    solid = await call("balanceOf(address)", word(funded.hex), path="walletsolidity")
    assert solid["constant_result"] == [word(0)]  # the funding block is not solidified yet


async def test_constant_call_to_an_unknown_contract_is_an_error(sim: Sim, funded: Wallet) -> None:
    answer = await sim.call(
        "/wallet/triggerconstantcontract",
        {
            "owner_address": funded.hex,
            "contract_address": funded.hex,
            "function_selector": "balanceOf(address)",
            "parameter": word(funded.hex),
        },
    )
    assert answer["result"]["code"] == "CONTRACT_VALIDATE_ERROR"


async def test_account_shows_balance_and_solidity_lags(sim: Sim, funded: Wallet) -> None:
    account = await sim.call("/wallet/getaccount", {"address": funded.address, "visible": True})
    assert account["address"] == funded.address
    assert account["balance"] == 100_000_000
    assert account["owner_permission"]["keys"][0]["address"] == funded.address
    assert await sim.call("/walletsolidity/getaccount", {"address": funded.hex}) == {}
    await sim.mine(18)
    solid = await sim.call("/walletsolidity/getaccount", {"address": funded.hex})
    assert solid["address"] == funded.hex
    assert solid["balance"] == 100_000_000


async def test_contract_abi_has_state_mutability(sim: Sim) -> None:
    contract = await sim.call("/wallet/getcontract", {"value": USDT, "visible": True})
    names = {e["name"]: e for e in contract["abi"]["entrys"]}
    assert names["transfer"]["stateMutability"] == "Nonpayable"
    assert names["balanceOf"]["stateMutability"] == "View"
    assert contract["contract_address"] == USDT
