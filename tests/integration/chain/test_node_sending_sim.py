"""TronNode sends money through a real simulator process: the node builds, the dev hot wallet's
key signs the txID, the node broadcasts, a block is mined, and the receipt shows what it cost."""

from __future__ import annotations

import pytest
from tronpy.keys import PrivateKey

from app.adapters.signer.keys import dev_keys
from app.adapters.tron.errors import TransactionRefused
from app.adapters.tron.node import TronNode
from app.adapters.tron.sending import ChainPrices, UnsignedTransaction
from tests.integration.chain.conftest import Simulator
from tron_sim.encoding import parse_address
from tron_sim.transactions import TRANSFER, Transaction

pytestmark = pytest.mark.integration

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
FEE_LIMIT = 30_000_000
HOT_KEY = PrivateKey(dev_keys()[0])
HOT = HOT_KEY.public_key.to_base58check_address()


def sign(tx: UnsignedTransaction, key: PrivateKey = HOT_KEY) -> str:
    return str(key.sign_msg_hash(bytes.fromhex(tx.txid)).hex())


def new_address() -> str:
    return str(PrivateKey.random().public_key.to_base58check_address())


@pytest.fixture
async def funded_hot_wallet(sim: Simulator) -> str:
    await sim.post("/sim/fund", {"address": HOT, "trx": "100", "usdt": "50"})
    return HOT


async def test_a_usdt_transfer_is_built_signed_broadcast_mined_and_its_costs_read(
    sim: Simulator, node: TronNode, funded_hot_wallet: str
) -> None:
    prices = await node.chain_prices()
    payee = new_address()
    trx_before = await node.trx_balance(HOT)

    tx = await node.build_token_transfer(HOT, payee, 12_340_000, USDT, FEE_LIMIT)
    sent = await node.broadcast(tx, sign(tx))

    assert (sent.accepted, sent.code) == (True, None)
    assert await node.transaction_receipt(tx.txid) is None  # pending until the next block
    await sim.mine()
    receipt = await node.transaction_receipt(tx.txid)
    assert receipt is not None
    assert receipt.result == "SUCCESS"
    assert receipt.energy_usage_total == 130_285  # to an address holding no USDT yet
    assert receipt.energy_fee == receipt.energy_usage_total * prices.energy_fee
    assert (receipt.net_usage, receipt.net_fee) == (345, 0)  # from the free 600 bytes of the day
    assert receipt.fee == receipt.energy_fee
    assert receipt.block_number == (await node.node_head()).head_number
    assert await node.token_balance(USDT, payee) == 12_340_000
    assert await node.token_balance(USDT, HOT) == 50_000_000 - 12_340_000
    assert await node.trx_balance(HOT) == trx_before - receipt.fee

    # Now the payee holds USDT, and the hot wallet's free bandwidth is spent for today.
    assert await node.transfer_energy(HOT, payee, 1, USDT) == 64_285
    assert await node.transfer_energy(HOT, new_address(), 1, USDT) == 130_285
    second = await node.build_token_transfer(HOT, payee, 1, USDT, FEE_LIMIT)
    assert (await node.broadcast(second, sign(second))).accepted
    await sim.mine()
    again = await node.transaction_receipt(second.txid)
    assert again is not None
    assert (again.energy_usage_total, again.net_usage) == (64_285, 0)
    assert again.net_fee == 345 * prices.transaction_fee
    assert again.fee == again.energy_fee + again.net_fee


async def test_a_trx_transfer_creating_its_recipient_pays_the_account_creation(
    sim: Simulator, node: TronNode, funded_hot_wallet: str
) -> None:
    prices = await node.chain_prices()
    payee = new_address()
    trx_before = await node.trx_balance(HOT)
    assert await node.trx_balance(payee) == 0

    tx = await node.build_trx_transfer(HOT, payee, 2_000_000)
    assert (await node.broadcast(tx, sign(tx))).accepted
    await sim.mine()

    receipt = await node.transaction_receipt(tx.txid)
    assert receipt is not None
    assert receipt.result == "SUCCESS"
    assert receipt.fee == prices.account_creation_cost == 1_100_000
    assert receipt.net_fee == prices.create_account_fee
    assert receipt.energy_usage_total == 0
    assert await node.trx_balance(payee) == 2_000_000
    assert await node.trx_balance(HOT) == trx_before - 2_000_000 - receipt.fee


async def test_the_same_signed_bytes_broadcast_again_count_as_accepted(
    sim: Simulator, node: TronNode, funded_hot_wallet: str
) -> None:
    tx = await node.build_trx_transfer(HOT, new_address(), 1_000_000)
    signature = sign(tx)

    first = await node.broadcast(tx, signature)
    pending_again = await node.broadcast(tx, signature)
    await sim.mine()
    mined_again = await node.broadcast(tx, signature)

    assert first.accepted and first.code is None
    assert (pending_again.accepted, pending_again.code) == (True, "DUP_TRANSACTION_ERROR")
    assert (mined_again.accepted, mined_again.code) == (True, "DUP_TRANSACTION_ERROR")
    assert await node.transaction_receipt(tx.txid) is not None


async def test_an_expired_transaction_is_refused_with_its_code(
    sim: Simulator, node: TronNode, funded_hot_wallet: str
) -> None:
    # A node-built transaction lives 60 s from its head block (the simulator's component tests
    # show it on a controlled clock); here one whose expiration is the head block's time.
    head = await node.block_header((await node.node_head()).head_number)
    packed = Transaction(
        kind=TRANSFER,
        owner=parse_address(HOT),
        to=parse_address(new_address()),
        amount=1_000_000,
        ref_block_bytes=bytes.fromhex(head.block_id[12:16]),
        ref_block_hash=bytes.fromhex(head.block_id[16:32]),
        expiration=head.timestamp_ms,
        timestamp=head.timestamp_ms - 1,
    ).to_json(True)
    tx = UnsignedTransaction(
        txid=packed["txID"],
        raw_data=packed["raw_data"],
        raw_data_hex=packed["raw_data_hex"],
        expiration_ms=head.timestamp_ms,
        visible=True,
    )

    refused = await node.broadcast(tx, sign(tx))

    assert (refused.accepted, refused.code) == (False, "TRANSACTION_EXPIRATION_ERROR")
    assert refused.message is not None
    assert f"but headBlockTime is {head.timestamp_ms}" in refused.message


async def test_a_signature_by_another_key_is_refused_with_sigerror(
    sim: Simulator, node: TronNode, funded_hot_wallet: str
) -> None:
    tx = await node.build_token_transfer(HOT, new_address(), 1, USDT, FEE_LIMIT)
    refused = await node.broadcast(tx, sign(tx, PrivateKey.random()))
    assert (refused.accepted, refused.code) == (False, "SIGERROR")
    assert refused.message is not None and "is signed by" in refused.message


async def test_a_trx_transfer_beyond_the_balance_is_refused_when_built(
    sim: Simulator, node: TronNode, funded_hot_wallet: str
) -> None:
    with pytest.raises(TransactionRefused, match="balance is not sufficient") as refused:
        await node.build_trx_transfer(HOT, new_address(), 101_000_000)
    assert refused.value.code == "CONTRACT_VALIDATE_ERROR"


async def test_chain_prices_are_the_simulators_fee_schedule(sim: Simulator, node: TronNode) -> None:
    assert await node.chain_prices() == ChainPrices(
        energy_fee=100,
        transaction_fee=1_000,
        free_net_limit=600,
        create_account_fee=100_000,
        create_new_account_fee=1_000_000,
    )
