"""TronNode's money-out calls against a fake java-tron transport: what it sends, how it reads the
answers (strictly), what it retries and what it refuses at once. No network.

Transactions the fake node "builds" are packed by the simulator's encoder (tron_sim), whose bytes
hash to java-tron's txIDs — written apart from the parser under test."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest

from app.adapters.tron.errors import NodeUnavailable, TokenContractMismatch, TransactionRefused
from app.adapters.tron.node import TronNode
from app.adapters.tron.sending import (
    ChainPrices,
    TransactionReceipt,
    UnsignedTransaction,
    transfer_parameter,
)
from app.runtime.retry import RetryPolicy
from tron_sim.encoding import parse_address
from tron_sim.transactions import TRANSFER, TRIGGER, Transaction

pytestmark = pytest.mark.unit

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
USDT_WORD = "000000000000000000000000a614f803b6fd780986a42c78ec9c7f77e6ded13c"
HOT = "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8"
CUSTOMER = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
TXID = "ab" * 32
SIGNATURE = "11" * 65
TERMS = {
    "ref_block_bytes": b"\x01\x02",
    "ref_block_hash": b"\x03" * 8,
    "expiration": 1_780_000_060_000,
    "timestamp": 1_780_000_000_000,
}

Answer = Any | Callable[[dict[str, Any]], Any]


class FakeNode:
    """Answers per path, in order (the last one repeats); records every request body."""

    def __init__(self) -> None:
        self.answers: dict[str, list[Answer]] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def on(self, path: str, *answers: Answer) -> None:
        self.answers[path] = list(answers)

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [body for seen, body in self.requests if seen == path]

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.lstrip("/")
        body = orjson.loads(request.content)
        self.requests.append((path, body))
        queue = self.answers[path]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            answer = answer(body)
        return httpx.Response(200, content=orjson.dumps(answer))


@pytest.fixture
def fake() -> FakeNode:
    return FakeNode()


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def node(fake: FakeNode) -> AsyncIterator[TronNode]:
    async with TronNode(
        "http://node.test/",
        retry=RetryPolicy(attempts=3),
        sleep=_no_sleep,
        transport=httpx.MockTransport(fake.handle),
    ) as client:
        yield client


def address(text: str) -> bytes:
    return parse_address(text)


def usdt_transfer(
    to: str = CUSTOMER, amount: int = 2_000_000, fee_limit: int = 30_000_000
) -> Transaction:
    data = bytes.fromhex("a9059cbb" + transfer_parameter(to, amount))
    return Transaction(
        kind=TRIGGER,
        owner=address(HOT),
        contract_address=address(USDT),
        data=data,
        fee_limit=fee_limit,
        **TERMS,  # type: ignore[arg-type]
    )


def trx_transfer(to: str = CUSTOMER, amount: int = 1_500_000) -> Transaction:
    return Transaction(kind=TRANSFER, owner=address(HOT), to=address(to), amount=amount, **TERMS)  # type: ignore[arg-type]


def built(tx: Transaction) -> dict[str, Any]:
    """Util.printCreateTransaction with visible = true."""
    return {"visible": True, **tx.to_json(True)}


def triggered(tx: Transaction) -> dict[str, Any]:
    return {"result": {"result": True}, "transaction": built(tx)}


# ----- encoding


def test_the_transfer_parameter_is_two_abi_words() -> None:
    assert transfer_parameter(USDT, 1) == USDT_WORD + "0" * 63 + "1"
    assert transfer_parameter(USDT, 2**256 - 1)[64:] == "f" * 64
    with pytest.raises(ValueError, match="uint256"):
        transfer_parameter(USDT, 2**256)


# ----- building a token transfer


async def test_a_token_transfer_is_built_by_the_node_and_checked_against_the_request(
    fake: FakeNode, node: TronNode
) -> None:
    tx = usdt_transfer()
    fake.on("wallet/triggersmartcontract", triggered(tx))

    unsigned = await node.build_token_transfer(HOT, CUSTOMER, 2_000_000, USDT, 30_000_000)

    assert fake.bodies("wallet/triggersmartcontract") == [
        {
            "owner_address": HOT,
            "contract_address": USDT,
            "function_selector": "transfer(address,uint256)",
            "parameter": transfer_parameter(CUSTOMER, 2_000_000),
            "fee_limit": 30_000_000,
            "call_value": 0,
            "visible": True,
        }
    ]
    assert unsigned == UnsignedTransaction(
        txid=tx.txid,
        raw_data=built(tx)["raw_data"],
        raw_data_hex=tx.raw.hex(),
        expiration_ms=TERMS["expiration"],
        visible=True,
    )
    assert unsigned.txid == hashlib.sha256(bytes.fromhex(unsigned.raw_data_hex)).hexdigest()


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(triggered(usdt_transfer(amount=2_000_001)), id="another amount"),
        pytest.param(triggered(usdt_transfer(to=HOT)), id="another recipient"),
        pytest.param(triggered(usdt_transfer(fee_limit=10**9)), id="another fee limit"),
        pytest.param(
            triggered(usdt_transfer()) | {"transaction": built(usdt_transfer()) | {"txID": TXID}},
            id="a txID that is not the sha256 of the bytes",
        ),
        pytest.param(
            {"result": {"result": True}, "transaction": {"txID": TXID}}, id="no raw_data_hex"
        ),
        pytest.param({"result": {}}, id="neither a transaction nor a code"),
    ],
)
async def test_a_built_transaction_that_is_not_the_one_asked_for_is_a_bad_answer(
    fake: FakeNode, node: TronNode, answer: dict[str, Any]
) -> None:
    fake.on("wallet/triggersmartcontract", answer)
    with pytest.raises(NodeUnavailable, match="bad_response"):
        await node.build_token_transfer(HOT, CUSTOMER, 2_000_000, USDT, 30_000_000)
    assert len(fake.bodies("wallet/triggersmartcontract")) == 3


async def test_raw_data_json_that_says_something_else_than_the_bytes_is_a_bad_answer(
    fake: FakeNode, node: TronNode
) -> None:
    answer = triggered(usdt_transfer())
    value = answer["transaction"]["raw_data"]["contract"][0]["parameter"]["value"]
    value["data"] = "a9059cbb" + transfer_parameter(HOT, 2_000_000)
    fake.on("wallet/triggersmartcontract", answer)
    with pytest.raises(NodeUnavailable, match="call data differs"):
        await node.build_token_transfer(HOT, CUSTOMER, 2_000_000, USDT, 30_000_000)


async def test_a_refused_token_transfer_raises_the_nodes_code_and_message_at_once(
    fake: FakeNode, node: TronNode
) -> None:
    message = "No contract or not a valid smart contract"
    fake.on(
        "wallet/triggersmartcontract",
        {"result": {"code": "CONTRACT_VALIDATE_ERROR", "message": message.encode().hex()}},
    )
    with pytest.raises(TransactionRefused) as refused:
        await node.build_token_transfer(HOT, CUSTOMER, 1, USDT, 0)
    assert (refused.value.code, refused.value.message) == ("CONTRACT_VALIDATE_ERROR", message)
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("amount", "fee_limit"), [(0, 1), (-5, 1), (2**256, 1), (True, 1), (1, -1)]
)
async def test_amounts_out_of_range_are_refused_before_asking_the_node(
    fake: FakeNode, node: TronNode, amount: int, fee_limit: int
) -> None:
    with pytest.raises(ValueError, match="must be an integer from"):
        await node.build_token_transfer(HOT, CUSTOMER, amount, USDT, fee_limit)
    assert fake.requests == []


async def test_a_bad_address_is_refused_before_asking_the_node(
    fake: FakeNode, node: TronNode
) -> None:
    with pytest.raises(ValueError, match="not a Tron address"):
        await node.build_token_transfer(HOT, "T-not-an-address", 1, USDT, 0)
    with pytest.raises(ValueError, match="not a Tron address"):
        await node.build_trx_transfer("41abc", CUSTOMER, 1)
    assert fake.requests == []


# ----- building a TRX transfer


async def test_a_trx_transfer_is_built_by_createtransaction(fake: FakeNode, node: TronNode) -> None:
    tx = trx_transfer()
    fake.on("wallet/createtransaction", built(tx))

    unsigned = await node.build_trx_transfer(HOT, CUSTOMER, 1_500_000)

    assert fake.bodies("wallet/createtransaction") == [
        {"owner_address": HOT, "to_address": CUSTOMER, "amount": 1_500_000, "visible": True}
    ]
    assert (unsigned.txid, unsigned.raw_data_hex) == (tx.txid, tx.raw.hex())


async def test_a_trx_transfer_the_actuator_refuses_is_not_retried(
    fake: FakeNode, node: TronNode
) -> None:
    message = "Validate TransferContract error, balance is not sufficient."
    fake.on(
        "wallet/createtransaction",
        {"Error": f"class org.tron.core.exception.ContractValidateException : {message}"},
    )
    with pytest.raises(TransactionRefused, match="balance is not sufficient") as refused:
        await node.build_trx_transfer(HOT, CUSTOMER, 10**12)
    assert (refused.value.code, refused.value.message) == ("CONTRACT_VALIDATE_ERROR", message)
    assert len(fake.requests) == 1


async def test_another_java_error_from_createtransaction_is_retried_as_a_bad_answer(
    fake: FakeNode, node: TronNode
) -> None:
    fake.on("wallet/createtransaction", {"Error": "class java.lang.NullPointerException : null"})
    with pytest.raises(NodeUnavailable, match="NullPointerException"):
        await node.build_trx_transfer(HOT, CUSTOMER, 1)
    assert len(fake.requests) == 3


# ----- broadcast


def unsigned_usdt() -> UnsignedTransaction:
    tx = usdt_transfer()
    answer = built(tx)
    return UnsignedTransaction(
        txid=tx.txid,
        raw_data=answer["raw_data"],
        raw_data_hex=answer["raw_data_hex"],
        expiration_ms=tx.expiration,
        visible=True,
    )


async def test_broadcast_sends_the_built_transaction_with_its_signature(
    fake: FakeNode, node: TronNode
) -> None:
    tx = unsigned_usdt()
    fake.on("wallet/broadcasttransaction", {"result": True, "txid": tx.txid})

    result = await node.broadcast(tx, SIGNATURE.upper())

    assert (result.accepted, result.code, result.message) == (True, None, None)
    assert fake.bodies("wallet/broadcasttransaction") == [
        {
            "txID": tx.txid,
            "raw_data": dict(tx.raw_data),
            "raw_data_hex": tx.raw_data_hex,
            "signature": [SIGNATURE],
            "visible": True,
        }
    ]


async def test_a_duplicate_counts_as_accepted(fake: FakeNode, node: TronNode) -> None:
    tx = unsigned_usdt()
    fake.on(
        "wallet/broadcasttransaction",
        {"code": "DUP_TRANSACTION_ERROR", "txid": tx.txid, "message": b"Dup transaction.".hex()},
    )
    result = await node.broadcast(tx, SIGNATURE)
    assert (result.accepted, result.code, result.message) == (
        True,
        "DUP_TRANSACTION_ERROR",
        "Dup transaction.",
    )


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("SIGERROR", "Validate signature error: miss sig or contract"),
        ("TAPOS_ERROR", "Tapos failed, different block hash"),
        ("TRANSACTION_EXPIRATION_ERROR", "Transaction expiration, transaction expiration time"),
        ("BANDWITH_ERROR", "Account resource insufficient error."),
        ("CONTRACT_VALIDATE_ERROR", "Validate TransferContract error, no OwnerAccount."),
    ],
)
@pytest.mark.parametrize("as_hex", [True, False], ids=["hex", "text (visible)"])
async def test_a_refused_broadcast_returns_its_code_and_message_without_retrying(
    fake: FakeNode, node: TronNode, code: str, message: str, as_hex: bool
) -> None:
    tx = unsigned_usdt()
    shown = message.encode().hex() if as_hex else message
    fake.on("wallet/broadcasttransaction", {"code": code, "txid": tx.txid, "message": shown})

    result = await node.broadcast(tx, SIGNATURE)

    assert (result.accepted, result.code, result.message) == (False, code, message)
    assert len(fake.requests) == 1


async def test_a_lost_answer_is_retried_and_the_duplicate_then_counts_as_accepted(
    fake: FakeNode, node: TronNode
) -> None:
    tx = unsigned_usdt()
    fake.on(
        "wallet/broadcasttransaction",
        httpx.ReadTimeout("the answer was lost"),
        {"code": "SERVER_BUSY", "txid": tx.txid},
        {"code": "DUP_TRANSACTION_ERROR", "txid": tx.txid, "message": "Dup transaction."},
    )
    result = await node.broadcast(tx, SIGNATURE)
    assert result.accepted is True
    assert len(fake.requests) == 3


async def test_a_broadcast_answer_for_another_txid_is_a_bad_answer(
    fake: FakeNode, node: TronNode
) -> None:
    fake.on("wallet/broadcasttransaction", {"result": True, "txid": TXID})
    with pytest.raises(NodeUnavailable, match="answered for txid"):
        await node.broadcast(unsigned_usdt(), SIGNATURE)


async def test_a_signature_that_is_not_65_bytes_is_refused_before_the_node(
    fake: FakeNode, node: TronNode
) -> None:
    with pytest.raises(ValueError, match="65 bytes"):
        await node.broadcast(unsigned_usdt(), "11" * 64)
    assert fake.requests == []


# ----- receipts


USDT_RECEIPT = {
    "id": TXID,
    "fee": 6_773_500,
    "blockNumber": 71_234_567,
    "blockTimeStamp": 1_780_000_003_000,
    "contractResult": ["0" * 63 + "1"],
    "contract_address": USDT,
    "receipt": {
        "energy_fee": 6_428_500,
        "energy_usage_total": 64_285,
        "net_fee": 345_000,
        "result": "SUCCESS",
    },
    "log": [{"address": "a614f803b6fd780986a42c78ec9c7f77e6ded13c", "topics": [], "data": ""}],
}


async def test_a_receipt_is_none_until_the_transaction_is_in_a_block(
    fake: FakeNode, node: TronNode
) -> None:
    fake.on("wallet/gettransactioninfobyid", {})
    assert await node.transaction_receipt(TXID.upper()) is None
    assert fake.bodies("wallet/gettransactioninfobyid") == [{"value": TXID, "visible": True}]


async def test_a_token_transfer_receipt_carries_energy_bandwidth_and_fee(
    fake: FakeNode, node: TronNode
) -> None:
    fake.on("wallet/gettransactioninfobyid", USDT_RECEIPT)
    assert await node.transaction_receipt(TXID) == TransactionReceipt(
        txid=TXID,
        block_number=71_234_567,
        block_timestamp_ms=1_780_000_003_000,
        fee=6_773_500,
        energy_usage_total=64_285,
        energy_fee=6_428_500,
        net_usage=0,
        net_fee=345_000,
        result="SUCCESS",
    )


async def test_a_trx_transfer_receipt_has_no_contract_result_and_succeeded(
    fake: FakeNode, node: TronNode
) -> None:
    fake.on(
        "wallet/gettransactioninfobyid",
        {"id": TXID, "blockNumber": 9, "blockTimeStamp": 1, "receipt": {"net_usage": 268}},
    )
    receipt = await node.transaction_receipt(TXID)
    assert receipt is not None
    assert (receipt.result, receipt.succeeded, receipt.fee, receipt.net_usage) == (
        "SUCCESS",
        True,
        0,
        268,
    )


@pytest.mark.parametrize(
    ("contract_result", "message", "expected"),
    [
        ("OUT_OF_ENERGY", "Not enough energy for 'SSTORE' operation", "OUT_OF_ENERGY"),
        ("REVERT", "REVERT opcode executed", "REVERT"),
        (None, "validate failed", "FAILED"),
    ],
)
async def test_a_failed_receipt_names_the_failure_and_decodes_its_message(
    fake: FakeNode, node: TronNode, contract_result: str | None, message: str, expected: str
) -> None:
    resource: dict[str, Any] = {"energy_fee": 100, "energy_usage_total": 1}
    if contract_result:
        resource["result"] = contract_result
    fake.on(
        "wallet/gettransactioninfobyid",
        {
            "id": TXID,
            "fee": 100,
            "blockNumber": 9,
            "blockTimeStamp": 1,
            "receipt": resource,
            "result": "FAILED",
            "resMessage": message.encode().hex(),
        },
    )
    receipt = await node.transaction_receipt(TXID)
    assert receipt is not None
    assert (receipt.result, receipt.message, receipt.succeeded) == (expected, message, False)


@pytest.mark.parametrize(
    "answer",
    [
        USDT_RECEIPT | {"id": "cd" * 32},
        USDT_RECEIPT | {"fee": "6773500"},
        USDT_RECEIPT | {"receipt": {"result": 1}},
        [USDT_RECEIPT],
    ],
)
async def test_a_receipt_that_is_not_the_one_asked_for_is_a_bad_answer(
    fake: FakeNode, node: TronNode, answer: Any
) -> None:
    fake.on("wallet/gettransactioninfobyid", answer)
    with pytest.raises(NodeUnavailable, match="bad_response"):
        await node.transaction_receipt(TXID)


# ----- balances, energy, prices


async def test_trx_balance_reads_getaccount_and_an_unknown_account_has_none(
    fake: FakeNode, node: TronNode
) -> None:
    fake.on(
        "wallet/getaccount",
        {"address": HOT, "balance": 12_345, "create_time": 1},
        {"address": CUSTOMER, "create_time": 1},
        {},
        {"address": CUSTOMER, "balance": 1},
    )
    assert await node.trx_balance(HOT) == 12_345
    assert await node.trx_balance(CUSTOMER) == 0
    assert await node.trx_balance(CUSTOMER) == 0
    assert fake.bodies("wallet/getaccount")[0] == {"address": HOT, "visible": True}
    with pytest.raises(NodeUnavailable, match="account address"):
        await node.trx_balance(HOT)  # the node answered about another account


async def test_token_balance_is_balance_of_through_a_constant_call(
    fake: FakeNode, node: TronNode
) -> None:
    fake.on(
        "wallet/triggerconstantcontract",
        {"result": {"result": True}, "energy_used": 935, "constant_result": [format(42, "064x")]},
    )
    assert await node.token_balance(USDT, CUSTOMER) == 42
    (body,) = fake.bodies("wallet/triggerconstantcontract")
    assert body["function_selector"] == "balanceOf(address)"
    assert body["parameter"] == transfer_parameter(CUSTOMER, 0)[:64]
    assert body["contract_address"] == USDT


async def test_token_balance_of_a_contract_that_is_not_there_is_a_mismatch(
    fake: FakeNode, node: TronNode
) -> None:
    fake.on(
        "wallet/triggerconstantcontract",
        {
            "result": {
                "code": "CONTRACT_VALIDATE_ERROR",
                "message": b"Smart contract is not exist.".hex(),
            }
        },
    )
    with pytest.raises(TokenContractMismatch, match="Smart contract is not exist"):
        await node.token_balance(CUSTOMER, HOT)
    assert len(fake.requests) == 1


async def test_transfer_energy_is_the_dry_runs_energy_used(fake: FakeNode, node: TronNode) -> None:
    fake.on(
        "wallet/triggerconstantcontract",
        {
            "result": {"result": True},
            "energy_used": 130_285,
            "constant_result": ["0" * 63 + "1"],
            "transaction": {"ret": [{}]},
        },
    )
    assert await node.transfer_energy(HOT, CUSTOMER, 5, USDT) == 130_285
    (body,) = fake.bodies("wallet/triggerconstantcontract")
    assert (body["owner_address"], body["function_selector"]) == (HOT, "transfer(address,uint256)")
    assert body["parameter"] == transfer_parameter(CUSTOMER, 5)


@pytest.mark.parametrize(
    "answer",
    [
        {
            "result": {"code": "CONTRACT_EXE_ERROR", "message": b"REVERT opcode executed".hex()},
            "energy_used": 2_117,
            "constant_result": [""],
        },
        {
            "result": {"result": True, "message": b"REVERT opcode executed".hex()},
            "energy_used": 2_117,
            "constant_result": [""],
            "transaction": {"ret": [{"ret": "FAILED"}]},
        },
    ],
    ids=["error code", "failed ret"],
)
async def test_transfer_energy_of_a_transfer_that_would_revert_is_refused(
    fake: FakeNode, node: TronNode, answer: dict[str, Any]
) -> None:
    fake.on("wallet/triggerconstantcontract", answer)
    with pytest.raises(TransactionRefused, match="REVERT opcode executed"):
        await node.transfer_energy(HOT, CUSTOMER, 10**12, USDT)


async def test_chain_prices_read_the_parameters_a_zero_has_no_value(
    fake: FakeNode, node: TronNode
) -> None:
    fake.on(
        "wallet/getchainparameters",
        {
            "chainParameter": [
                {"key": "getMaintenanceTimeInterval", "value": 21_600_000},
                {"key": "getCreateAccountFee", "value": 100_000},
                {"key": "getTransactionFee", "value": 1_000},
                {"key": "getCreateNewAccountFeeInSystemContract", "value": 1_000_000},
                {"key": "getEnergyFee", "value": 100},
                {"key": "getFreeNetLimit"},
                {"key": "getRemoveThePowerOfTheGr", "value": -1},
            ]
        },
    )
    prices = await node.chain_prices()
    assert prices == ChainPrices(
        energy_fee=100,
        transaction_fee=1_000,
        free_net_limit=0,
        create_account_fee=100_000,
        create_new_account_fee=1_000_000,
    )
    assert prices.account_creation_cost == 1_100_000


async def test_chain_prices_without_the_energy_price_are_a_bad_answer(
    fake: FakeNode, node: TronNode
) -> None:
    fake.on("wallet/getchainparameters", {"chainParameter": [{"key": "getTransactionFee"}]})
    with pytest.raises(NodeUnavailable, match="getEnergyFee"):
        await node.chain_prices()
