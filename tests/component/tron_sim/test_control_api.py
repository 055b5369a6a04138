"""The /sim/ control API: funding, faucet transfers, mining, failures, reorgs and persistence."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.component.tron_sim.client_tx import word
from tests.component.tron_sim.conftest import FakeClock, Sim, Wallet, new_wallet, start_sim
from tron_sim.app import SimSettings

pytestmark = pytest.mark.component


async def usdt_of(sim: Sim, wallet: Wallet) -> int:
    answer = await sim.call(
        "/wallet/triggerconstantcontract",
        {
            "owner_address": wallet.hex,
            "contract_address": "41a614f803b6fd780986a42c78ec9c7f77e6ded13c",
            "function_selector": "balanceOf(address)",
            "parameter": word(wallet.hex),
        },
    )
    return int(answer["constant_result"][0], 16)


async def test_status_names_faucet_contract_and_heights(sim: Sim) -> None:
    response = await sim.client.get("/sim/status")
    status = await response.json()
    assert status["usdt_contract"] == "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
    assert status["faucet"]["address"].startswith("T")
    assert status["faucet"]["usdt"] == "1000000000"
    assert status["head"]["number"] == 0
    assert status["solidified"]["number"] == 0
    assert status["manual"] is True


async def test_transfer_pays_any_address_without_keys(sim: Sim) -> None:
    payee = new_wallet()
    sent = await sim.control("transfer", {"to": payee.address, "amount": "9.99"})
    assert await usdt_of(sim, payee) == 0  # pending until a block

    mined = await sim.mine()
    assert mined["blocks"][0]["transactions"] == [sent["txid"]]
    assert await usdt_of(sim, payee) == 9_990_000
    info = await sim.call("/wallet/gettransactioninfobyid", {"value": sent["txid"]})
    assert info["log"][0]["topics"][2] == word(payee.hex)


async def test_transfer_with_mine_lands_in_a_block_at_once(sim: Sim) -> None:
    payee = new_wallet()
    sent = await sim.control("transfer", {"to": payee.hex, "amount": "1", "mine": True})
    assert sent["block"]["number"] == 1
    assert await usdt_of(sim, payee) == 1_000_000


async def test_fail_flag_includes_a_revert(sim: Sim) -> None:
    payee = new_wallet()
    sent = await sim.control("transfer", {"to": payee.address, "amount": "5", "fail": True})
    await sim.mine()
    info = await sim.call("/wallet/gettransactioninfobyid", {"value": sent["txid"]})
    assert info["receipt"]["result"] == "REVERT"
    assert "log" not in info
    assert await usdt_of(sim, payee) == 0


async def test_fail_next_makes_the_next_client_transfer_revert(sim: Sim) -> None:
    assert (await sim.control("fail-next", {"count": 1}))["fail_next"] == 1
    first = await sim.control("transfer", {"to": new_wallet().address, "amount": "1"})
    second = await sim.control("transfer", {"to": new_wallet().address, "amount": "1"})
    await sim.mine()
    one = await sim.call("/wallet/gettransactioninfobyid", {"value": first["txid"]})
    two = await sim.call("/wallet/gettransactioninfobyid", {"value": second["txid"]})
    assert one["receipt"]["result"] == "REVERT"
    assert two["receipt"]["result"] == "SUCCESS"


async def test_batch_transfers_fill_blocks_per_block(sim: Sim) -> None:
    payees = [new_wallet() for _ in range(5)]
    answer = await sim.control(
        "transfers",
        {
            "transfers": [{"to": p.address, "amount": "0.5"} for p in payees],
            "mine": True,
            "per_block": 2,
        },
    )
    assert [b["transactions"] for b in answer["blocks"]] == [2, 2, 1]
    assert len(set(answer["txids"])) == 5
    assert [await usdt_of(sim, p) for p in payees] == [500_000] * 5


async def test_fund_activates_and_credits_a_labelled_wallet(sim: Sim) -> None:
    await sim.control("fund", {"wallet": "alice", "trx": "50", "usdt": "20"})
    alice = await (await sim.client.get("/sim/wallet/alice")).json()
    assert alice["activated"] is True
    assert alice["usdt"] == "20"
    payee = new_wallet()
    sent = await sim.control("transfer", {"from": "alice", "to": payee.address, "amount": "2"})
    await sim.mine()
    assert sent["from"] == alice["address"]
    assert await usdt_of(sim, payee) == 2_000_000


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("transfer", {"to": "T123", "amount": "1"}, "to"),
        ("transfer", {"to": "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH", "amount": "1.0000001"}, "amount"),
        ("transfer", {"to": "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH", "amount": 1.5}, "amount"),
        ("transfer", {"to": "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH", "amount": "-1"}, "amount"),
        ("fund", {"address": "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"}, "trx/usdt"),
        ("transfers", {"transfers": []}, "transfers"),
        ("mine", {"blocks": 0}, "blocks"),
        ("reorg", {"depth": 1, "drop": "abc"}, "drop"),
    ],
)
async def test_bad_control_requests_name_the_field(
    sim: Sim, path: str, body: dict[str, object], field: str
) -> None:
    answer = await sim.control_error(path, body)
    assert answer["field"] == field


async def test_reorg_replaces_blocks_with_new_ids_and_parents(sim: Sim) -> None:
    await sim.mine(5)
    before = [await sim.call("/wallet/getblockbynum", {"num": n}) for n in range(6)]
    answer = await sim.control("reorg", {"depth": 3})
    after = [await sim.call("/wallet/getblockbynum", {"num": n}) for n in range(6)]

    assert answer["old_blocks"] == [b["blockID"] for b in before[3:]]
    assert answer["new_blocks"] == [b["blockID"] for b in after[3:]]
    assert after[:3] == before[:3]
    for old, new in zip(before[3:], after[3:], strict=True):
        assert new["blockID"] != old["blockID"]
        assert new["blockID"][:16] == old["blockID"][:16]
    assert after[4]["block_header"]["raw_data"]["parentHash"] == after[3]["blockID"]
    assert after[3]["block_header"]["raw_data"]["parentHash"] == before[2]["blockID"]
    assert await sim.call("/wallet/getblockbyid", {"value": before[5]["blockID"]}) == {}


async def test_reorg_drops_and_delays_transactions(sim: Sim) -> None:
    dropped_payee, moved_payee = new_wallet(), new_wallet()
    dropped = await sim.control("transfer", {"to": dropped_payee.address, "amount": "3"})
    moved = await sim.control("transfer", {"to": moved_payee.address, "amount": "4"})
    mined = await sim.mine()
    await sim.mine(2)
    block_number = mined["blocks"][0]["number"]

    await sim.control("reorg", {"depth": 3, "drop": [dropped["txid"]], "delay": {moved["txid"]: 2}})

    assert await sim.call("/wallet/gettransactioninfobyid", {"value": dropped["txid"]}) == {}
    info = await sim.call("/wallet/gettransactioninfobyid", {"value": moved["txid"]})
    assert info["blockNumber"] == block_number + 2
    assert await usdt_of(sim, dropped_payee) == 0
    assert await usdt_of(sim, moved_payee) == 4_000_000


async def test_reorg_beyond_the_delay_returns_to_the_pool(sim: Sim) -> None:
    sent = await sim.control("transfer", {"to": new_wallet().address, "amount": "1"})
    await sim.mine()
    answer = await sim.control("reorg", {"depth": 1, "delay": {sent["txid"]: 5}})
    assert answer["returned_to_pool"] == [sent["txid"]]
    await sim.mine()
    info = await sim.call("/wallet/gettransactioninfobyid", {"value": sent["txid"]})
    assert info["blockNumber"] == 2


async def test_reorg_refuses_to_touch_solidified_blocks(sim: Sim) -> None:
    await sim.mine(20)
    answer = await sim.control_error("reorg", {"depth": 19})
    assert answer["field"] == "depth"
    assert (await sim.control("reorg", {"depth": 18}))["head"] == 20


async def test_pause_and_resume_show_in_status(sim: Sim) -> None:
    assert (await sim.control("pause"))["paused"] is True
    assert (await sim.control("resume"))["paused"] is False


async def test_automatic_production_makes_blocks_until_paused() -> None:
    clock = FakeClock()
    running = await start_sim(SimSettings(block_interval=0.01, clock=clock), clock)
    try:
        for _ in range(500):
            if running.chain.head.number >= 3:
                break
            clock.advance(3_000)
            await asyncio.sleep(0.01)
        assert running.chain.head.number >= 3
        await running.control("pause")
        paused_at = running.chain.head.number
        await asyncio.sleep(0.05)
        assert running.chain.head.number == paused_at
    finally:
        await running.client.close()


async def test_data_dir_resumes_at_the_same_height(data_dir: Path) -> None:
    clock = FakeClock()
    settings = SimSettings(block_interval=0, clock=clock, data_dir=data_dir)
    first = await start_sim(settings, clock)
    payee = new_wallet()
    await first.control("transfer", {"to": payee.address, "amount": "7", "mine": True})
    await first.mine(4)
    await first.control("reorg", {"depth": 2})
    head = await first.call("/wallet/getnowblock")
    await first.client.close()

    second = await start_sim(settings, clock)
    try:
        assert await second.call("/wallet/getnowblock") == head
        assert await usdt_of(second, payee) == 7_000_000
    finally:
        await second.client.close()
