"""Transactions the node builds (`triggersmartcontract`, `createtransaction`), signed by the client
over the txID and broadcast; and what a reorg does to them, as java-tron would."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from app.adapters.tron.raw_transactions import decode_raw_transaction
from tests.component.tron_sim.client_tx import USDT, USDT_HEX, word
from tests.component.tron_sim.conftest import Sim, Wallet, new_wallet

pytestmark = pytest.mark.component

FEE_LIMIT = 30_000_000


def text(message_hex: str) -> str:
    return bytes.fromhex(message_hex).decode()


async def build_usdt(
    sim: Sim, owner: Wallet, to: Wallet, amount: int, *, visible: bool = True
) -> Any:
    return await sim.call(
        "/wallet/triggersmartcontract",
        {
            "owner_address": owner.address if visible else owner.hex,
            "contract_address": USDT if visible else USDT_HEX,
            "function_selector": "transfer(address,uint256)",
            "parameter": word(to.hex) + word(amount),
            "fee_limit": FEE_LIMIT,
            "call_value": 0,
            "visible": visible,
        },
    )


async def build_trx(sim: Sim, owner: Wallet, to: str, amount: int, visible: bool = True) -> Any:
    return await sim.call(
        "/wallet/createtransaction",
        {"owner_address": owner.address, "to_address": to, "amount": amount, "visible": visible},
    )


def signed(tx: dict[str, Any], owner: Wallet) -> dict[str, Any]:
    signature = owner.key.sign_msg_hash(bytes.fromhex(tx["txID"])).hex()
    return {
        "txID": tx["txID"],
        "raw_data": tx["raw_data"],
        "raw_data_hex": tx["raw_data_hex"],
        "signature": [signature],
        "visible": tx["visible"],
    }


async def broadcast(sim: Sim, body: dict[str, Any]) -> Any:
    return await sim.call("/wallet/broadcasttransaction", body)


async def receipt(sim: Sim, txid: str) -> Any:
    return await sim.call("/wallet/gettransactioninfobyid", {"value": txid})


# ----- triggersmartcontract


async def test_triggersmartcontract_builds_a_usdt_transfer_on_the_head_block(
    sim: Sim, funded: Wallet
) -> None:
    payee = new_wallet()
    sim.clock.advance(1_234)
    answer = await build_usdt(sim, funded, payee, 2_500_000)
    head = sim.chain.head

    assert answer["result"] == {"result": True}
    tx = answer["transaction"]
    assert set(tx) == {"visible", "txID", "raw_data", "raw_data_hex"}
    assert tx["visible"] is True
    assert tx["txID"] == hashlib.sha256(bytes.fromhex(tx["raw_data_hex"])).hexdigest()
    raw = tx["raw_data"]
    assert raw["contract"] == [
        {
            "parameter": {
                "value": {
                    "owner_address": funded.address,
                    "contract_address": USDT,
                    "data": "a9059cbb" + word(payee.hex) + word(2_500_000),
                },
                "type_url": "type.googleapis.com/protocol.TriggerSmartContract",
            },
            "type": "TriggerSmartContract",
        }
    ]
    assert raw["ref_block_bytes"] == head.id_hex[12:16]
    assert raw["ref_block_hash"] == head.id_hex[16:32]
    assert raw["expiration"] == head.timestamp + 60_000
    assert raw["timestamp"] == sim.clock()
    assert raw["fee_limit"] == FEE_LIMIT

    decoded = decode_raw_transaction(tx["raw_data_hex"])
    assert (decoded.kind, decoded.owner, decoded.to, decoded.amount) == (
        "trc20",
        funded.address,
        payee.address,
        2_500_000,
    )
    assert (decoded.token_contract, decoded.fee_limit) == (USDT, FEE_LIMIT)
    assert decoded.expiration_ms == raw["expiration"]
    assert decoded.ref_block_hash.hex() == raw["ref_block_hash"]


async def test_triggersmartcontract_without_visible_prints_hex_addresses(
    sim: Sim, funded: Wallet
) -> None:
    answer = await build_usdt(sim, funded, new_wallet(), 1, visible=False)
    tx = answer["transaction"]
    assert tx["visible"] is False
    value = tx["raw_data"]["contract"][0]["parameter"]["value"]
    assert (value["owner_address"], value["contract_address"]) == (funded.hex, USDT_HEX)


async def test_a_built_usdt_transfer_signed_by_the_owner_is_mined_with_its_costs(
    sim: Sim, funded: Wallet
) -> None:
    payee = new_wallet()
    tx = (await build_usdt(sim, funded, payee, 2_500_000))["transaction"]

    sent = await broadcast(sim, signed(tx, funded))
    assert sent == {"result": True, "txid": tx["txID"]}
    await sim.mine()

    info = await receipt(sim, tx["txID"])
    assert info["receipt"]["result"] == "SUCCESS"
    assert info["receipt"]["energy_usage_total"] == 130_285  # a recipient with no USDT yet
    assert info["receipt"]["energy_fee"] == 130_285 * 100
    # Its 345 bytes come from the owner's 600 free bytes of the day: no TRX burnt for them.
    assert info["receipt"]["net_usage"] == 345
    assert "net_fee" not in info["receipt"]
    assert info["fee"] == 130_285 * 100
    assert sim.chain.ledger.get("token", bytes.fromhex(payee.hex)) == 2_500_000


async def test_triggersmartcontract_runs_a_view_function_as_a_constant_call(
    sim: Sim, funded: Wallet
) -> None:
    answer = await sim.call(
        "/wallet/triggersmartcontract",
        {
            "owner_address": funded.address,
            "contract_address": USDT,
            "function_selector": "balanceOf(address)",
            "parameter": word(funded.hex),
            "visible": True,
        },
    )
    assert answer["result"] == {"result": True}
    assert answer["constant_result"] == [word(50_000_000)]


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (
            {"contract_address": "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"},
            "CONTRACT_VALIDATE_ERROR",
            "No contract or not a valid smart contract",
        ),
        (
            {"owner_address": ""},
            "OTHER_ERROR",
            "class java.security.InvalidParameterException : owner_address isn't set.",
        ),
        (
            {"function_selector": None},
            "OTHER_ERROR",
            "class java.security.InvalidParameterException : function_selector isn't set.",
        ),
    ],
)
async def test_triggersmartcontract_refusals_are_a_result_with_code_and_message(
    sim: Sim, funded: Wallet, change: dict[str, Any], code: str, message: str
) -> None:
    body = {
        "owner_address": funded.address,
        "contract_address": USDT,
        "function_selector": "transfer(address,uint256)",
        "parameter": word(new_wallet().hex) + word(1),
        **change,
    }
    answer = await sim.call("/wallet/triggersmartcontract", body)
    assert set(answer) == {"result"}
    assert answer["result"]["code"] == code
    assert text(answer["result"]["message"]) == message
    visible = await sim.call("/wallet/triggersmartcontract", body | {"visible": True})
    assert visible["result"]["message"] == message


async def test_triggersmartcontract_refuses_a_bad_owner_address(sim: Sim) -> None:
    answer = await sim.call(
        "/wallet/triggersmartcontract",
        {
            "owner_address": "T-not-an-address",
            "contract_address": USDT,
            "function_selector": "transfer(address,uint256)",
            "parameter": word(1) + word(1),
            "visible": True,
        },
    )
    assert answer["result"]["code"] == "OTHER_ERROR"
    assert answer["result"]["message"].startswith("class java.lang.IllegalArgumentException : ")


# ----- createtransaction


async def test_createtransaction_builds_a_trx_transfer(sim: Sim, funded: Wallet) -> None:
    payee = new_wallet()
    tx = await build_trx(sim, funded, payee.address, 1_500_000)
    head = sim.chain.head

    assert set(tx) == {"visible", "txID", "raw_data", "raw_data_hex"}
    assert tx["txID"] == hashlib.sha256(bytes.fromhex(tx["raw_data_hex"])).hexdigest()
    assert tx["raw_data"]["contract"] == [
        {
            "parameter": {
                "value": {
                    "owner_address": funded.address,
                    "to_address": payee.address,
                    "amount": 1_500_000,
                },
                "type_url": "type.googleapis.com/protocol.TransferContract",
            },
            "type": "TransferContract",
        }
    ]
    assert "fee_limit" not in tx["raw_data"]
    assert tx["raw_data"]["ref_block_hash"] == head.id_hex[16:32]
    assert tx["raw_data"]["expiration"] == head.timestamp + 60_000
    decoded = decode_raw_transaction(tx["raw_data_hex"])
    assert (decoded.kind, decoded.owner, decoded.to, decoded.amount) == (
        "trx",
        funded.address,
        payee.address,
        1_500_000,
    )


async def test_a_built_trx_transfer_is_mined_and_creates_the_recipient(
    sim: Sim, funded: Wallet
) -> None:
    payee = new_wallet()
    tx = await build_trx(sim, funded, payee.address, 1_500_000)
    assert (await broadcast(sim, signed(tx, funded)))["result"] is True
    await sim.mine()

    info = await receipt(sim, tx["txID"])
    # Creating an account: getCreateAccountFee for bandwidth + 1 TRX for the account.
    assert info["fee"] == 1_100_000
    assert info["receipt"] == {"net_fee": 100_000}
    assert "result" not in info
    account = await sim.call("/wallet/getaccount", {"address": payee.address, "visible": True})
    assert account["balance"] == 1_500_000


@pytest.mark.parametrize(
    ("to", "amount", "message"),
    [
        (None, 101_000_000, "Validate TransferContract error, balance is not sufficient."),
        ("owner", 1, "Cannot transfer TRX to yourself."),
        (None, 0, "Amount must be greater than 0."),
        (USDT, 1, "Cannot transfer TRX to a smartContract."),
    ],
)
async def test_createtransaction_refusals_are_java_tron_errors(
    sim: Sim, funded: Wallet, to: str | None, amount: int, message: str
) -> None:
    recipient = funded.address if to == "owner" else to or new_wallet().address
    answer = await build_trx(sim, funded, recipient, amount)
    assert answer == {
        "Error": f"class org.tron.core.exception.ContractValidateException : {message}"
    }


async def test_createtransaction_refuses_an_owner_that_is_no_account(sim: Sim) -> None:
    answer = await build_trx(sim, new_wallet(), new_wallet().address, 1)
    assert answer["Error"].endswith("Validate TransferContract error, no OwnerAccount.")


async def test_createtransaction_counts_what_is_already_pending(sim: Sim, funded: Wallet) -> None:
    first = await build_trx(sim, funded, new_wallet().address, 60_000_000)
    assert (await broadcast(sim, signed(first, funded)))["result"] is True
    answer = await build_trx(sim, funded, new_wallet().address, 60_000_000)
    assert "balance is not sufficient" in answer["Error"]


# ----- duplicates and expiration


async def test_the_same_signed_bytes_broadcast_twice_is_a_duplicate(
    sim: Sim, funded: Wallet
) -> None:
    body = signed(await build_trx(sim, funded, new_wallet().address, 1_000_000), funded)
    assert (await broadcast(sim, body))["result"] is True
    again = await broadcast(sim, body)
    assert (again["code"], again["message"]) == ("DUP_TRANSACTION_ERROR", "Dup transaction.")
    await sim.mine()
    assert (await broadcast(sim, body))["code"] == "DUP_TRANSACTION_ERROR"


async def test_a_built_transaction_lives_60_seconds_from_its_head_block(
    sim: Sim, funded: Wallet
) -> None:
    body = signed(await build_trx(sim, funded, new_wallet().address, 1_000_000), funded)
    sim.clock.advance(61_000)
    await sim.control("mine")  # a head newer than the expiration

    refused = await broadcast(sim, body)
    assert refused["code"] == "TRANSACTION_EXPIRATION_ERROR"
    assert (
        refused["message"]
        == "Transaction expiration, transaction expiration time is "
        + str(body["raw_data"]["expiration"])
        + f", but headBlockTime is {sim.chain.head.timestamp}"
    )


async def test_accepted_but_not_mined_before_its_expiration_it_is_dropped(
    sim: Sim, funded: Wallet
) -> None:
    body = signed(await build_trx(sim, funded, new_wallet().address, 1_000_000), funded)
    assert (await broadcast(sim, body))["result"] is True
    sim.clock.advance(61_000)  # the next block comes after the expiration
    await sim.control("mine")

    assert await receipt(sim, body["txID"]) == {}
    assert sim.chain.pending == {}


# ----- reorgs


async def mined_usdt_transfer(sim: Sim, owner: Wallet) -> dict[str, Any]:
    """A USDT transfer built on the head block H, signed, broadcast and mined in H + 1."""
    tx = (await build_usdt(sim, owner, new_wallet(), 1_000_000))["transaction"]
    body = signed(tx, owner)
    assert (await broadcast(sim, body))["result"] is True
    await sim.mine()
    return body


async def test_a_reorg_above_the_reference_block_keeps_the_transaction(
    sim: Sim, funded: Wallet
) -> None:
    body = await mined_usdt_transfer(sim, funded)
    before = await receipt(sim, body["txID"])

    answer = await sim.control("reorg", {"depth": 1})

    after = await receipt(sim, body["txID"])
    assert answer["lost"] == []
    assert after["blockNumber"] == before["blockNumber"]
    assert after["receipt"] == before["receipt"]
    block = await sim.call("/wallet/getblockbynum", {"num": after["blockNumber"]})
    assert block["blockID"] == answer["new_blocks"][0]


async def test_a_dropped_transaction_has_no_receipt_and_its_bytes_can_be_broadcast_again(
    sim: Sim, funded: Wallet
) -> None:
    body = await mined_usdt_transfer(sim, funded)

    answer = await sim.control("reorg", {"depth": 1, "drop": [body["txID"]]})

    assert answer["dropped"] == [body["txID"]]
    assert await receipt(sim, body["txID"]) == {}
    assert await broadcast(sim, body) == {"result": True, "txid": body["txID"]}
    await sim.mine()
    assert (await receipt(sim, body["txID"]))["receipt"]["result"] == "SUCCESS"


async def test_a_reorg_replacing_the_reference_block_loses_the_transaction(
    sim: Sim, funded: Wallet
) -> None:
    body = await mined_usdt_transfer(sim, funded)

    answer = await sim.control("reorg", {"depth": 2})  # replaces H (its TaPoS block) and H + 1

    assert answer["lost"] == [body["txID"]]
    assert await receipt(sim, body["txID"]) == {}
    refused = await broadcast(sim, body)
    assert refused["code"] == "TAPOS_ERROR"
    assert refused["message"].startswith("Tapos failed, different block hash")


async def test_a_transaction_returned_to_the_pool_is_mined_in_the_next_block(
    sim: Sim, funded: Wallet
) -> None:
    body = await mined_usdt_transfer(sim, funded)

    answer = await sim.control("reorg", {"depth": 1, "delay": {body["txID"]: 1}})

    assert answer["returned_to_pool"] == [body["txID"]]
    assert await receipt(sim, body["txID"]) == {}
    assert (await broadcast(sim, body))["code"] == "DUP_TRANSACTION_ERROR"
    mined = await sim.mine()
    assert (await receipt(sim, body["txID"]))["blockNumber"] == mined["head"]


async def test_a_pending_transaction_whose_reference_block_is_replaced_leaves_the_pool(
    sim: Sim, funded: Wallet
) -> None:
    await sim.mine()
    tx = await build_trx(sim, funded, new_wallet().address, 1_000_000)  # on the head block
    body = signed(tx, funded)
    assert (await broadcast(sim, body))["result"] is True

    answer = await sim.control("reorg", {"depth": 1})

    assert answer["lost"] == [body["txID"]]
    assert sim.chain.pending == {}
    assert (await broadcast(sim, body))["code"] == "TAPOS_ERROR"
