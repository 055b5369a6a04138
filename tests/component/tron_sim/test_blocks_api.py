"""Block, node and chain-parameter servlets: java-tron's shapes, `visible`, `{}` and solidity."""

from __future__ import annotations

from itertools import pairwise

import pytest

from tests.component.tron_sim.conftest import Sim, Wallet

pytestmark = pytest.mark.component


async def test_node_info_names_head_and_solidified_block(sim: Sim) -> None:
    await sim.mine(20)
    info = await sim.call("/wallet/getnodeinfo")
    head = await sim.call("/wallet/getnowblock")
    solid = await sim.call("/walletsolidity/getnowblock")

    assert info["block"] == f"Num:20,ID:{head['blockID']}"
    assert info["solidityBlock"] == f"Num:2,ID:{solid['blockID']}"
    assert solid["block_header"]["raw_data"]["number"] == 2


async def test_block_ids_start_with_the_height_and_chain_by_parent_hash(sim: Sim) -> None:
    await sim.mine(3)
    blocks = [await sim.call("/wallet/getblockbynum", {"num": n}) for n in range(4)]

    for number, block in enumerate(blocks):
        assert block["blockID"][:16] == format(number, "016x")
        assert len(block["blockID"]) == 64
    for parent, child in pairwise(blocks):
        assert child["block_header"]["raw_data"]["parentHash"] == parent["blockID"]
    by_id = await sim.call("/wallet/getblockbyid", {"value": blocks[2]["blockID"]})
    assert by_id == blocks[2]


async def test_empty_block_omits_transactions_and_genesis_omits_number(sim: Sim) -> None:
    await sim.mine()
    empty = await sim.call("/wallet/getblockbynum", {"num": 1})
    genesis = await sim.call("/wallet/getblockbynum", {"num": 0})

    assert "transactions" not in empty
    assert empty["block_header"]["raw_data"]["number"] == 1
    assert "number" not in genesis["block_header"]["raw_data"]


async def test_visible_switches_addresses_between_base58_and_hex(sim: Sim, funded: Wallet) -> None:
    hex_block = await sim.call("/wallet/getnowblock")
    b58_block = await sim.call("/wallet/getnowblock", {"visible": True})

    assert hex_block["block_header"]["raw_data"]["witness_address"].startswith("41")
    assert b58_block["block_header"]["raw_data"]["witness_address"].startswith("T")
    hex_value = hex_block["transactions"][1]["raw_data"]["contract"][0]["parameter"]["value"]
    b58_value = b58_block["transactions"][1]["raw_data"]["contract"][0]["parameter"]["value"]
    assert hex_value["contract_address"] == "41a614f803b6fd780986a42c78ec9c7f77e6ded13c"
    assert b58_value["contract_address"] == "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
    assert b58_value["data"] == hex_value["data"]


async def test_unknown_things_are_empty_objects(sim: Sim) -> None:
    missing = "ab" * 32
    assert await sim.call("/wallet/getblockbynum", {"num": 99}) == {}
    assert await sim.call("/wallet/getblockbyid", {"value": missing}) == {}
    assert await sim.call("/wallet/gettransactionbyid", {"value": missing}) == {}
    assert await sim.call("/wallet/gettransactioninfobyid", {"value": missing}) == {}
    assert (
        await sim.call("/wallet/getaccount", {"address": "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"})
        == {}
    )
    assert (
        await sim.call("/wallet/getcontract", {"value": "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"}) == {}
    )


async def test_solidity_api_serves_only_solidified_blocks(sim: Sim) -> None:
    await sim.mine(19)
    assert (await sim.call("/walletsolidity/getblockbynum", {"num": 1}))["blockID"]
    assert await sim.call("/walletsolidity/getblockbynum", {"num": 2}) == {}
    head = await sim.call("/wallet/getnowblock")
    assert await sim.call("/walletsolidity/getblockbyid", {"value": head["blockID"]}) == {}


async def test_block_by_limit_next_returns_half_open_range(sim: Sim) -> None:
    await sim.mine(5)
    listed = await sim.call("/wallet/getblockbylimitnext", {"startNum": 2, "endNum": 5})

    assert [b["block_header"]["raw_data"]["number"] for b in listed["block"]] == [2, 3, 4]
    assert await sim.call("/wallet/getblockbylimitnext", {"startNum": 5, "endNum": 2}) == {}
    beyond = await sim.call("/wallet/getblockbylimitnext", {"startNum": 4, "endNum": 50})
    assert [b["block_header"]["raw_data"]["number"] for b in beyond["block"]] == [4, 5]


async def test_get_requests_take_query_parameters(sim: Sim) -> None:
    await sim.mine()
    response = await sim.client.get("/wallet/getblockbynum", params={"num": "1", "visible": "true"})
    block = await response.json()
    assert block["block_header"]["raw_data"]["witness_address"].startswith("T")


async def test_malformed_json_gets_java_error_object(sim: Sim) -> None:
    response = await sim.client.post("/wallet/getblockbynum", data=b"{not json")
    body = await response.json()
    assert response.status == 200
    assert body["Error"].startswith("class com.alibaba.fastjson.JSONException")


async def test_chain_parameters_list_the_energy_fee(sim: Sim) -> None:
    params = (await sim.call("/wallet/getchainparameters"))["chainParameter"]
    assert {"key": "getEnergyFee", "value": 100} in params


async def test_transaction_info_by_block_num_is_an_array(sim: Sim, funded: Wallet) -> None:
    head = sim.chain.head.number
    infos = await sim.call("/wallet/gettransactioninfobyblocknum", {"num": head})
    await sim.mine()
    empty = await sim.call("/wallet/gettransactioninfobyblocknum", {"num": head + 1})

    assert [i["blockNumber"] for i in infos] == [head, head]
    assert empty == []
