"""Bandwidth as java-tron charges it: a free daily allowance, then TRX burnt, then a refusal."""

from __future__ import annotations

from typing import Any

import pytest

from tests.component.tron_sim.client_tx import raw_data, signed, trx_transfer, usdt_transfer
from tests.component.tron_sim.conftest import FakeClock, Sim, Wallet, new_wallet, start_sim
from tron_sim.__main__ import parse_args
from tron_sim.app import SimSettings

pytestmark = pytest.mark.component

DAY_MS = 86_400_000
TRX = 1_000_000  # SUN


def varint_size(value: int) -> int:
    size = 1
    while value > 0x7F:
        value >>= 7
        size += 1
    return size


def bandwidth_of(tx: dict[str, Any]) -> int:
    """java-tron's figure for a transaction: its protobuf without `ret` (raw_data as field 1, each
    signature as field 2) plus 64 bytes for the result."""
    parts = [bytes.fromhex(tx["raw_data_hex"])] + [bytes.fromhex(s) for s in tx["signature"]]
    return sum(1 + varint_size(len(part)) + len(part) for part in parts) + 64


async def send(sim: Sim, owner: Wallet, contract: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Sign and broadcast as a client does: the txid and the node's answer."""
    body = await signed(sim, await raw_data(sim, contract), owner.key)
    return body["txID"], await sim.call("/wallet/broadcasttransaction", body)


async def sent_trx(sim: Sim, owner: Wallet, to_hex: str, amount: int) -> str:
    txid, answer = await send(sim, owner, trx_transfer(owner.hex, to_hex, amount))
    assert answer == {"result": True, "txid": txid}
    return txid


async def info_of(sim: Sim, txid: str) -> dict[str, Any]:
    return await sim.call("/wallet/gettransactioninfobyid", {"value": txid})


async def size_of(sim: Sim, txid: str) -> int:
    return bandwidth_of(await sim.call("/wallet/gettransactionbyid", {"value": txid}))


async def trx_of(sim: Sim, wallet: Wallet) -> int:
    account = await sim.call("/wallet/getaccount", {"address": wallet.hex})
    return int(account.get("balance", 0))


async def resource_of(sim: Sim, wallet: Wallet) -> dict[str, Any]:
    return await sim.call(
        "/wallet/getaccountresource", {"address": wallet.address, "visible": True}
    )


def faucet_hex(sim: Sim) -> str:
    return sim.chain.faucet.address.hex()  # an existing account: sending to it creates nothing


async def test_first_transfer_of_a_fresh_account_uses_free_bandwidth(
    sim: Sim, funded: Wallet
) -> None:
    txid = await sent_trx(sim, funded, faucet_hex(sim), 1 * TRX)
    await sim.mine()

    info = await info_of(sim, txid)
    size = await size_of(sim, txid)
    assert 250 < size < 300  # a TRX transfer is about 268 bytes on mainnet
    assert info["receipt"] == {"net_usage": size}
    assert "fee" not in info
    assert await trx_of(sim, funded) == 99 * TRX  # the amount only: no TRX burnt


async def test_once_the_allowance_is_used_a_transfer_burns_trx_per_byte(
    sim: Sim, funded: Wallet
) -> None:
    first = await sent_trx(sim, funded, faucet_hex(sim), 1 * TRX)
    second = await sent_trx(sim, funded, faucet_hex(sim), 2 * TRX)
    await sim.mine()
    used = await size_of(sim, first) + await size_of(sim, second)
    assert (await info_of(sim, second))["receipt"] == {"net_usage": await size_of(sim, second)}
    assert used <= 600

    third = await sent_trx(sim, funded, faucet_hex(sim), 3 * TRX)
    await sim.mine()

    size = await size_of(sim, third)
    assert size > 600 - used
    info = await info_of(sim, third)
    assert info["receipt"] == {"net_fee": size * 1_000}
    assert info["fee"] == size * 1_000
    assert await trx_of(sim, funded) == 100 * TRX - 6 * TRX - size * 1_000


async def test_usdt_transfer_fee_adds_burnt_bandwidth_to_energy(sim: Sim, funded: Wallet) -> None:
    await sent_trx(sim, funded, faucet_hex(sim), 1 * TRX)
    await sent_trx(sim, funded, faucet_hex(sim), 2 * TRX)
    await sim.mine()
    txid, answer = await send(sim, funded, usdt_transfer(funded.hex, faucet_hex(sim), 1_000_000))
    assert answer["result"] is True
    await sim.mine()

    size = await size_of(sim, txid)
    assert size == 345  # what a USDT transfer takes on mainnet
    info = await info_of(sim, txid)
    assert info["receipt"]["result"] == "SUCCESS"
    assert info["receipt"]["net_fee"] == size * 1_000
    assert "net_usage" not in info["receipt"]
    assert info["receipt"]["energy_fee"] == 64_285 * 100  # the faucet holds USDT
    assert info["fee"] == 64_285 * 100 + size * 1_000
    assert await trx_of(sim, funded) == 97 * TRX - info["fee"]


async def test_no_trx_and_no_allowance_left_is_refused_at_broadcast(sim: Sim) -> None:
    deposit = new_wallet()  # like a paid deposit address: some USDT, no TRX to spare
    await sim.control("fund", {"address": deposit.address, "trx": "2", "usdt": "5"})
    await sent_trx(sim, deposit, faucet_hex(sim), 1_200_000)
    await sent_trx(sim, deposit, faucet_hex(sim), 800_000)  # all that is left, still free
    await sim.mine()
    assert await trx_of(sim, deposit) == 0
    payee = new_wallet()

    body = await signed(
        sim, await raw_data(sim, usdt_transfer(deposit.hex, payee.hex, 1_000_000)), deposit.key
    )
    refused = await sim.call("/wallet/broadcasttransaction", body | {"visible": True})
    await sim.mine()

    # java-tron's code, spelt as java-tron spells it (GrpcAPI.Return.response_code)
    assert refused == {
        "code": "BANDWITH_ERROR",
        "txid": body["txID"],
        "message": "Account resource insufficient error.",
    }
    assert await info_of(sim, body["txID"]) == {}
    assert await sim.call("/wallet/gettransactionbyid", {"value": body["txID"]}) == {}
    assert sim.chain.pending == {}
    balances = await (await sim.client.get("/sim/balance", params={"address": payee.hex})).json()
    assert balances["usdt"] == "0"
    deposit_now = await (
        await sim.client.get("/sim/balance", params={"address": deposit.hex})
    ).json()
    assert deposit_now["usdt"] == "5"
    assert deposit_now["trx"] == "0"


async def test_pending_transactions_count_at_broadcast_and_all_accepted_are_packed(
    sim: Sim,
) -> None:
    wallet = new_wallet()
    await sim.control("fund", {"address": wallet.address, "trx": "1.5"})
    to = faucet_hex(sim)
    # One block: two transfers fit the free allowance, the third must burn TRX, and a fourth
    # finds neither allowance nor TRX left once the first three are counted.
    first = await sent_trx(sim, wallet, to, 600_000)
    second = await sent_trx(sim, wallet, to, 400_000)
    third = await sent_trx(sim, wallet, to, 100_000)
    fourth, refused = await send(sim, wallet, trx_transfer(wallet.hex, to, 100_001))
    assert refused["code"] == "BANDWITH_ERROR"

    mined = await sim.mine()

    assert mined["blocks"][0]["transactions"] == [first, second, third]
    assert "net_usage" in (await info_of(sim, first))["receipt"]
    assert "net_usage" in (await info_of(sim, second))["receipt"]
    burnt = (await info_of(sim, third))["receipt"]["net_fee"]
    assert burnt == await size_of(sim, third) * 1_000
    assert await trx_of(sim, wallet) == 1_500_000 - 1_100_000 - burnt
    assert await info_of(sim, fourth) == {}


async def test_free_allowance_recovers_over_24_hours_of_block_time(
    sim: Sim, funded: Wallet
) -> None:
    await sent_trx(sim, funded, faucet_hex(sim), 1 * TRX)
    await sent_trx(sim, funded, faucet_hex(sim), 2 * TRX)
    await sim.mine()
    used = (await resource_of(sim, funded))["freeNetUsed"]
    assert 500 < used <= 600

    sim.clock.advance(DAY_MS // 2)
    await sim.mine()
    half = (await resource_of(sim, funded))["freeNetUsed"]
    assert abs(half - used / 2) <= 1  # linear recovery

    sim.clock.advance(DAY_MS // 2)
    await sim.mine()
    assert "freeNetUsed" not in await resource_of(sim, funded)
    txid = await sent_trx(sim, funded, faucet_hex(sim), 3 * TRX)
    await sim.mine()
    info = await info_of(sim, txid)
    assert info["receipt"] == {"net_usage": await size_of(sim, txid)}
    assert await trx_of(sim, funded) == 94 * TRX  # nothing burnt


async def test_account_resource_shows_free_net_used_rising(sim: Sim, funded: Wallet) -> None:
    fresh = await resource_of(sim, funded)
    assert fresh == {
        "freeNetLimit": 600,
        "TotalNetLimit": 43_200_000_000,
        "TotalNetWeight": fresh["TotalNetWeight"],
        "TotalEnergyLimit": 180_000_000_000,
        "TotalEnergyWeight": fresh["TotalEnergyWeight"],
    }  # nothing staked: NetUsed, NetLimit, EnergyUsed, EnergyLimit are 0 and left out

    first = await sent_trx(sim, funded, faucet_hex(sim), 1 * TRX)
    await sim.mine()
    after_one = await resource_of(sim, funded)
    second = await sent_trx(sim, funded, faucet_hex(sim), 2 * TRX)
    await sim.mine()
    after_two = await resource_of(sim, funded)

    assert after_one["freeNetUsed"] == await size_of(sim, first)
    assert after_two["freeNetUsed"] == after_one["freeNetUsed"] + await size_of(sim, second)
    assert after_two["freeNetLimit"] == 600
    account = await sim.call("/wallet/getaccount", {"address": funded.hex})
    assert account["free_net_usage"] == after_two["freeNetUsed"]
    assert account["latest_consume_free_time"] == sim.chain.blocks[-2].timestamp


async def test_chain_parameters_list_the_bandwidth_prices(sim: Sim) -> None:
    params = (await sim.call("/wallet/getchainparameters"))["chainParameter"]
    assert {"key": "getTransactionFee", "value": 1_000} in params
    assert {"key": "getFreeNetLimit", "value": 600} in params
    assert {"key": "getCreateAccountFee", "value": 100_000} in params


async def test_bandwidth_prices_are_configurable() -> None:
    clock = FakeClock()
    settings = SimSettings(block_interval=0, clock=clock, transaction_fee=10, free_net_limit=0)
    running = await start_sim(settings, clock)
    try:
        wallet = new_wallet()
        await running.control("fund", {"address": wallet.address, "trx": "10"})
        txid = await sent_trx(running, wallet, faucet_hex(running), 1 * TRX)
        await running.mine()

        size = await size_of(running, txid)
        assert (await info_of(running, txid))["receipt"] == {"net_fee": size * 10}
        params = (await running.call("/wallet/getchainparameters"))["chainParameter"]
        assert {"key": "getTransactionFee", "value": 10} in params
        assert {"key": "getFreeNetLimit"} in params  # 0: a proto3 default, not printed
        status = await (await running.client.get("/sim/status")).json()
        assert (status["transaction_fee"], status["free_net_limit"]) == (10, 0)
    finally:
        await running.client.close()


def test_command_line_sets_the_bandwidth_prices() -> None:
    args = parse_args(["--transaction-fee", "420", "--free-net-limit", "1500"])
    assert (args.transaction_fee, args.free_net_limit) == (420, 1500)
    defaults = parse_args([])
    assert (defaults.transaction_fee, defaults.free_net_limit) == (1_000, 600)
