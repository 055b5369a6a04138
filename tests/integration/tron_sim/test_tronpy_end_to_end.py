"""A real tronpy client, signing with its own key, moves USDT and TRX through the simulator."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from tronpy import AsyncTron, Tron
from tronpy.exceptions import TvmError
from tronpy.keys import PrivateKey
from tronpy.providers import AsyncHTTPProvider, HTTPProvider

from tests.integration.tron_sim.conftest import SimProcess, start_simulator, stop_simulator

pytestmark = pytest.mark.integration

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


def funded_key(sim: SimProcess, trx: str = "100", usdt: str = "50") -> tuple[PrivateKey, str]:
    key = PrivateKey.random()
    address = key.public_key.to_base58check_address()
    sim.post("/sim/fund", {"address": address, "trx": trx, "usdt": usdt})
    return key, address


def new_address() -> str:
    return PrivateKey.random().public_key.to_base58check_address()


def test_sync_tronpy_usdt_transfer_moves_balances(sim: SimProcess) -> None:
    client = Tron(HTTPProvider(sim.url))
    key, owner = funded_key(sim)
    recipient = new_address()
    contract = client.get_contract(USDT)
    assert contract.functions.decimals() == 6
    assert contract.functions.symbol() == "USDT"
    assert contract.functions.balanceOf(owner) == 50_000_000

    txn = (
        contract.functions.transfer(recipient, 12_340_000)
        .with_owner(owner)
        .fee_limit(30_000_000)
        .build()
        .sign(key)
    )
    sent = txn.broadcast()
    assert sent["result"] is True
    sim.post("/sim/mine")

    assert sent.result() is True
    info = client.get_transaction_info(sent.txid)
    assert info["receipt"]["result"] == "SUCCESS"
    assert info["contract_address"] == USDT
    assert contract.functions.balanceOf(recipient) == 12_340_000
    assert contract.functions.balanceOf(owner) == 37_660_000
    assert client.get_account_balance(owner) == Decimal(100) - Decimal(info["fee"]) / 1_000_000
    on_chain = client.get_transaction(sent.txid)
    assert on_chain["ret"][0]["contractRet"] == "SUCCESS"
    assert on_chain["raw_data"]["contract"][0]["parameter"]["value"]["owner_address"] == owner


def test_sync_tronpy_trx_transfer_activates_the_recipient(sim: SimProcess) -> None:
    client = Tron(HTTPProvider(sim.url))
    key, owner = funded_key(sim, trx="10", usdt="1")
    recipient = new_address()
    sent = client.trx.transfer(owner, recipient, 1_500_000).build().sign(key).broadcast()
    sim.post("/sim/mine")

    info = client.get_transaction_info(sent.txid)
    assert info["fee"] == 1_100_000  # creating an account: 1 TRX plus 0.1 TRX of bandwidth
    assert client.get_account_balance(recipient) == Decimal("1.5")
    assert client.get_account_balance(owner) == Decimal("10") - Decimal("1.5") - Decimal("1.1")


def test_sync_tronpy_overdraft_is_included_as_revert(sim: SimProcess) -> None:
    client = Tron(HTTPProvider(sim.url))
    key, owner = funded_key(sim, usdt="1")
    contract = client.get_contract(USDT)
    txn = (
        contract.functions.transfer(new_address(), 2_000_000)
        .with_owner(owner)
        .fee_limit(30_000_000)
        .build()
        .sign(key)
    )
    sent = txn.broadcast()
    sim.post("/sim/mine")

    with pytest.raises(TvmError, match="REVERT"):
        sent.result()
    info = client.get_transaction_info(sent.txid)
    assert info["result"] == "FAILED"
    assert "log" not in info
    assert client.get_transaction(sent.txid)["ret"][0]["contractRet"] == "REVERT"
    assert contract.functions.balanceOf(owner) == 1_000_000


def test_solidified_receipt_appears_after_nineteen_confirmations(sim: SimProcess) -> None:
    client = Tron(HTTPProvider(sim.url))
    recipient = new_address()
    txid = sim.post("/sim/transfer", {"to": recipient, "amount": "3.5", "mine": True})["txid"]
    assert client.get_transaction_info(txid)["receipt"]["result"] == "SUCCESS"
    assert (
        client.provider.make_request("walletsolidity/gettransactioninfobyid", {"value": txid}) == {}
    )

    sim.post("/sim/mine", {"blocks": 18})
    assert client.get_solid_transaction_info(txid)["id"] == txid
    head, solid = client.get_latest_block_number(), client.get_latest_solid_block_number()
    assert head - solid == 18


async def test_async_tronpy_usdt_transfer_moves_balances(sim: SimProcess) -> None:
    key, owner = funded_key(sim)
    recipient = new_address()
    async with AsyncTron(AsyncHTTPProvider(sim.url)) as client:
        contract = await client.get_contract(USDT)
        assert await contract.functions.balanceOf(owner) == 50_000_000
        builder = await contract.functions.transfer(recipient, 7_000_000)
        txn = await builder.with_owner(owner).fee_limit(30_000_000).build()
        sent = await txn.sign(key).broadcast()
        assert sent["result"] is True
        sim.post("/sim/mine")

        info = await client.get_transaction_info(sent.txid)
        assert info["receipt"]["result"] == "SUCCESS"
        assert await contract.functions.balanceOf(recipient) == 7_000_000
        assert await contract.functions.balanceOf(owner) == 43_000_000


async def test_async_tronpy_trx_transfer(sim: SimProcess) -> None:
    key, owner = funded_key(sim, trx="5", usdt="1")
    recipient = new_address()
    sim.post("/sim/fund", {"address": recipient, "trx": "1"})
    async with AsyncTron(AsyncHTTPProvider(sim.url)) as client:
        builder = client.trx.transfer(owner, recipient, 2_000_000)
        txn = await builder.build()
        sent = await txn.sign(key).broadcast()
        sim.post("/sim/mine")
        info = await client.get_transaction_info(sent.txid)
        assert "fee" not in info  # an existing account: free bandwidth, no fee
        assert await client.get_account_balance(recipient) == Decimal("3")


def test_a_taken_port_is_reported_and_sigterm_stops_cleanly(
    sim: SimProcess, tmp_path: Path
) -> None:
    port = sim.url.rsplit(":", 1)[1]
    second = subprocess.run(
        [sys.executable, "-m", "tron_sim", "--port", port, "--manual"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 1
    assert b"already in use" in second.stderr

    other = start_simulator(tmp_path / "other.log")
    assert stop_simulator(other) == 0
    assert "shutting down" in other.log_path.read_text()
