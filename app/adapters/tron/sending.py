"""Sending through a java-tron node: what it answers when it builds, broadcasts and runs a transfer.

The node builds the transaction (``wallet/triggersmartcontract``, ``wallet/createtransaction``);
the signer signs its txID; ``wallet/broadcasttransaction`` hands it to the network;
``wallet/gettransactioninfobyid`` shows its receipt once it is in a block. Every answer is parsed
strictly: a built transaction must be the one asked for (its ``raw_data_hex`` decoded by the
signer's own reader and its ``raw_data`` JSON saying the same), its txID the sha256 of those bytes.
An answer that is not what the endpoint promises raises ``MalformedAnswer``, retried like an outage
by ``TronNode._call``.

java-tron prints a ``Return.message`` and a receipt's ``resMessage`` as hex, or as text when the
request said ``visible: true``; ``node_text`` reads both. Numbers the node leaves out are 0
(proto3 prints no default value).
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from app.adapters.tron.addresses import account_id
from app.adapters.tron.errors import TokenContractMismatch, TransactionRefused
from app.adapters.tron.raw_transactions import (
    TRC20_TRANSFER,
    DecodedTransfer,
    UndecodableTransaction,
    decode_raw_transaction,
)

TRANSFER_SELECTOR: Final = "transfer(address,uint256)"
BALANCE_OF_SELECTOR: Final = "balanceOf(address)"
UINT256_MAX: Final = 2**256 - 1
DUPLICATE: Final = "DUP_TRANSACTION_ERROR"
# Broadcast codes that say "not now" about the node, not "no" about the transaction: retried.
NODE_BUSY_CODES: Final = frozenset(
    {"SERVER_BUSY", "NO_CONNECTION", "NOT_ENOUGH_EFFECTIVE_CONNECTION"}
)
_CONTRACT_VALIDATE_EXCEPTION: Final = "org.tron.core.exception.ContractValidateException : "
_HEX: Final = frozenset(string.hexdigits)


class MalformedAnswer(Exception):
    """The node answered, but not with what the endpoint promises (retried like an outage)."""


class NodeBusy(MalformedAnswer):
    """The node cannot take a broadcast now (SERVER_BUSY and the like): retried like an outage."""


@dataclass(frozen=True)
class UnsignedTransaction:
    """A transaction as the node built it. Sign ``txid`` (sha256 of ``raw_data_hex``); broadcast
    ``raw_data`` with ``visible`` as given (java-tron packs the JSON again to check the id)."""

    txid: str
    raw_data: Mapping[str, Any] = field(hash=False)
    raw_data_hex: str
    expiration_ms: int
    visible: bool

    def broadcast_body(self, signature_hex: str) -> dict[str, Any]:
        return {
            "txID": self.txid,
            "raw_data": self.raw_data,
            "raw_data_hex": self.raw_data_hex,
            "signature": [signature_hex],
            "visible": self.visible,
        }


@dataclass(frozen=True)
class BroadcastResult:
    """``accepted``: the node has the transaction (now, or already: ``DUP_TRANSACTION_ERROR``).
    Otherwise ``code`` says why not (SIGERROR, TAPOS_ERROR, TRANSACTION_EXPIRATION_ERROR,
    BANDWITH_ERROR — java-tron's spelling —, CONTRACT_VALIDATE_ERROR…) and ``message`` how."""

    accepted: bool
    code: str | None
    message: str | None


@dataclass(frozen=True)
class TransactionReceipt:
    """A mined transaction's receipt (``gettransactioninfobyid``). Amounts in sun.

    ``result`` is ``SUCCESS`` or the failure: the contract's (``REVERT``, ``OUT_OF_ENERGY``…)
    when it ran one, else ``FAILED``; ``message`` is java-tron's ``resMessage`` for a failure.
    ``fee`` is everything burnt: ``energy_fee`` + ``net_fee`` (+ the account creation fee)."""

    txid: str
    block_number: int
    block_timestamp_ms: int
    fee: int
    energy_usage_total: int
    energy_fee: int
    net_usage: int
    net_fee: int
    result: str
    message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.result == "SUCCESS"


@dataclass(frozen=True)
class ChainPrices:
    """The chain parameters that price a transaction, in sun (``getchainparameters``).

    ``energy_fee`` per unit of energy; ``transaction_fee`` per byte of bandwidth once the
    ``free_net_limit`` bytes of the day are spent; a TRX transfer that creates its recipient burns
    ``create_account_fee`` (its bandwidth) + ``create_new_account_fee`` (the account)."""

    energy_fee: int
    transaction_fee: int
    free_net_limit: int
    create_account_fee: int
    create_new_account_fee: int

    @property
    def account_creation_cost(self) -> int:
        return self.create_account_fee + self.create_new_account_fee


@dataclass(frozen=True)
class TransferTerms:
    """What a built transaction must do: the request, to compare with the node's answer."""

    kind: Literal["trx", "trc20"]
    owner: str
    to: str
    amount: int
    token_contract: str | None = None
    fee_limit: int = 0


# ----- encoding


def address_word(address: str) -> str:
    """An address as a 32-byte ABI word: 12 zero bytes and the 20-byte account id, no ``41``."""
    return account_id(address).rjust(32, b"\0").hex()


def uint256_word(value: int) -> str:
    if not 0 <= value <= UINT256_MAX:
        raise ValueError(f"{value} is not a uint256")
    return format(value, "064x")


def transfer_parameter(to: str, amount: int) -> str:
    """The ``parameter`` of ``transfer(address,uint256)``: two 32-byte words, hex."""
    return address_word(to) + uint256_word(amount)


def transfer_call_data(to: str, amount: int) -> str:
    return TRC20_TRANSFER.hex() + transfer_parameter(to, amount)


# ----- reading answers


def node_text(value: Any) -> str | None:
    """A ``message``/``resMessage`` as text: java-tron sends hex unless the request was visible."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedAnswer(f"expected a message string, got {type(value).__name__}")
    if len(value) % 2 == 0 and _HEX.issuperset(value):
        try:
            return bytes.fromhex(value).decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedAnswer(f"expected a JSON object, got {type(value).__name__}")
    if "Error" in value:
        raise MalformedAnswer(f"node error: {str(value['Error'])[:200]}")
    return value


def count(body: Mapping[str, Any], key: str) -> int:
    """A non-negative integer field; absent is 0 (proto3 prints no default)."""
    value = body.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedAnswer(f"{key} is not a non-negative integer: {value!r}")
    return value


def _hex(value: Any, what: str, length: int | None = None) -> str:
    if not isinstance(value, str) or not _HEX.issuperset(value) or len(value) % 2:
        raise MalformedAnswer(f"{what} is not hex: {value!r}")
    if length is not None and len(value) != length:
        raise MalformedAnswer(f"{what} is not {length // 2} bytes: {value!r}")
    return value.lower()


def _same_address(value: Any, expected: str, what: str) -> None:
    try:
        same = isinstance(value, str) and account_id(value) == account_id(expected)
    except ValueError:
        same = False
    if not same:
        raise MalformedAnswer(f"the built transaction's {what} is {value!r}, not {expected}")


def _error_refusal(text: str) -> TransactionRefused:
    """``{"Error": "class <exception> : <message>"}`` of a servlet that failed to build."""
    head, separator, message = text.partition(_CONTRACT_VALIDATE_EXCEPTION)
    if separator and not head.strip().removeprefix("class").strip():
        return TransactionRefused("CONTRACT_VALIDATE_ERROR", message)
    raise MalformedAnswer(f"node error: {text[:200]}")


def parse_created(answer: Any, terms: TransferTerms) -> UnsignedTransaction:
    """``wallet/createtransaction``: the transaction, or ``{"Error": …}`` when the
    TransferActuator refuses it (``TransactionRefused``)."""
    if isinstance(answer, Mapping) and isinstance(answer.get("Error"), str):
        raise _error_refusal(answer["Error"])
    return _built(mapping(answer), terms)


def parse_triggered(answer: Any, terms: TransferTerms) -> UnsignedTransaction:
    """``wallet/triggersmartcontract``: ``{"result": {"result": true}, "transaction": …}``, or a
    ``result`` with ``code`` and ``message`` and no transaction (``TransactionRefused``)."""
    body = mapping(answer)
    result = mapping(body.get("result"))
    if result.get("result") is not True:
        code = result.get("code")
        if not isinstance(code, str):
            raise MalformedAnswer(
                f"triggersmartcontract answered neither a result nor a code: {result!r}"
            )
        raise TransactionRefused(code, node_text(result.get("message")) or "")
    return _built(mapping(body.get("transaction")), terms)


def _built(tx: Mapping[str, Any], terms: TransferTerms) -> UnsignedTransaction:
    raw_data_hex = _hex(tx.get("raw_data_hex"), "raw_data_hex")
    txid = _hex(tx.get("txID"), "txID", 64)
    if hashlib.sha256(bytes.fromhex(raw_data_hex)).hexdigest() != txid:
        raise MalformedAnswer("the txID is not the sha256 of raw_data_hex")
    try:
        decoded = decode_raw_transaction(raw_data_hex)
    except UndecodableTransaction as exc:
        raise MalformedAnswer(f"the built transaction cannot be read: {exc}") from None
    _check_terms(decoded, terms)
    raw_data = mapping(tx.get("raw_data"))
    _check_raw_data(raw_data, decoded, terms)
    visible = tx.get("visible")
    if not isinstance(visible, bool):
        raise MalformedAnswer(f"visible is not a boolean: {visible!r}")
    return UnsignedTransaction(
        txid=txid,
        raw_data=raw_data,
        raw_data_hex=raw_data_hex,
        expiration_ms=decoded.expiration_ms,
        visible=visible,
    )


def _check_terms(decoded: DecodedTransfer, terms: TransferTerms) -> None:
    """The bytes the signer will sign do what was asked, and nothing else."""
    wanted = (
        terms.kind,
        terms.owner,
        terms.to,
        terms.amount,
        terms.token_contract,
        terms.fee_limit,
    )
    got = (
        decoded.kind,
        decoded.owner,
        decoded.to,
        decoded.amount,
        decoded.token_contract,
        decoded.fee_limit,
    )
    if got != wanted:
        raise MalformedAnswer(f"the node built {got}, not the requested {wanted}")


def _check_raw_data(raw: Mapping[str, Any], decoded: DecodedTransfer, terms: TransferTerms) -> None:
    """The JSON the broadcast sends back says what the bytes say (java-tron re-packs the JSON)."""
    fields = {
        "expiration": decoded.expiration_ms,
        "timestamp": decoded.timestamp_ms,
        "fee_limit": decoded.fee_limit,
    }
    for key, expected in fields.items():
        if count(raw, key) != expected:
            raise MalformedAnswer(f"raw_data.{key} differs from raw_data_hex")
    refs = {"ref_block_bytes": decoded.ref_block_bytes, "ref_block_hash": decoded.ref_block_hash}
    for key, ref in refs.items():
        if _hex(raw.get(key), f"raw_data.{key}") != ref.hex():
            raise MalformedAnswer(f"raw_data.{key} differs from raw_data_hex")
    contracts = raw.get("contract")
    if not isinstance(contracts, list) or len(contracts) != 1:
        raise MalformedAnswer("raw_data.contract is not one contract")
    contract = mapping(contracts[0])
    value = mapping(mapping(contract.get("parameter")).get("value"))
    _same_address(value.get("owner_address"), terms.owner, "owner")
    if terms.kind == "trx":
        if contract.get("type") != "TransferContract" or count(value, "amount") != terms.amount:
            raise MalformedAnswer("raw_data's contract is not the requested TRX transfer")
        _same_address(value.get("to_address"), terms.to, "recipient")
        return
    assert terms.token_contract is not None
    if contract.get("type") != "TriggerSmartContract" or count(value, "call_value"):
        raise MalformedAnswer("raw_data's contract is not the requested token transfer")
    _same_address(value.get("contract_address"), terms.token_contract, "token contract")
    if _hex(value.get("data"), "raw_data's call data") != transfer_call_data(
        terms.to, terms.amount
    ):
        raise MalformedAnswer("raw_data's call data differs from the requested transfer")


def parse_broadcast(answer: Any, txid: str) -> BroadcastResult:
    """``wallet/broadcasttransaction``: ``{"result": true, "txid"}`` or ``{"code", "txid",
    "message"}``. A duplicate counts as accepted: the node already has these very bytes."""
    body = mapping(answer)
    answered_id = body.get("txid")
    if answered_id not in (None, "") and str(answered_id).lower() != txid:
        raise MalformedAnswer(f"the node answered for txid {answered_id!r}, not {txid}")
    if body.get("result") is True:
        return BroadcastResult(accepted=True, code=None, message=None)
    code = body.get("code")
    if not isinstance(code, str) or not code:
        raise MalformedAnswer(f"a broadcast answer with neither result nor code: {dict(body)!r}")
    message = node_text(body.get("message"))
    if code in NODE_BUSY_CODES:
        raise NodeBusy(f"{code}: {message or ''}")
    return BroadcastResult(accepted=code == DUPLICATE, code=code, message=message)


def parse_receipt(answer: Any, txid: str) -> TransactionReceipt | None:
    """``wallet/gettransactioninfobyid``: ``{}`` until the transaction is in a block."""
    body = mapping(answer)
    if not body:
        return None
    if str(body.get("id", "")).lower() != txid:
        raise MalformedAnswer(f"asked for the receipt of {txid}, got {body.get('id')!r}")
    resource = mapping(body.get("receipt", {}))
    contract_result = resource.get("result")
    if contract_result is not None and not isinstance(contract_result, str):
        raise MalformedAnswer(f"receipt.result is not a string: {contract_result!r}")
    failed = body.get("result") == "FAILED"
    if body.get("result") not in (None, "SUCESS", "SUCCESS", "FAILED"):  # java-tron's enum: SUCESS
        raise MalformedAnswer(f"unexpected receipt result {body.get('result')!r}")
    if contract_result in (None, "DEFAULT", "SUCCESS"):
        result = "FAILED" if failed else "SUCCESS"
    else:
        result = contract_result
    return TransactionReceipt(
        txid=txid,
        block_number=count(body, "blockNumber"),
        block_timestamp_ms=count(body, "blockTimeStamp"),
        fee=count(body, "fee"),
        energy_usage_total=count(resource, "energy_usage_total"),
        energy_fee=count(resource, "energy_fee"),
        net_usage=count(resource, "net_usage"),
        net_fee=count(resource, "net_fee"),
        result=result,
        message=node_text(body.get("resMessage")) if result != "SUCCESS" else None,
    )


def parse_account_balance(answer: Any, address: str) -> int:
    """``wallet/getaccount``: the TRX balance in sun; ``{}`` (never activated) is 0."""
    body = mapping(answer)
    if not body:
        return 0
    _same_address(body.get("address"), address, "account address")
    return count(body, "balance")


@dataclass(frozen=True)
class ConstantCall:
    """What ``triggerconstantcontract`` answered for a call that ran."""

    words: str  # constant_result[0], hex
    energy_used: int


def parse_constant_call(answer: Any, contract: str) -> ConstantCall:
    """``wallet/triggerconstantcontract``. A contract that is not there is
    ``TokenContractMismatch``; a call that reverts is ``TransactionRefused``."""
    body = mapping(answer)
    result = mapping(body.get("result"))
    code = result.get("code")
    message = node_text(result.get("message")) or ""
    if result.get("result") is not True:
        if not isinstance(code, str):
            raise MalformedAnswer(
                f"a constant call answered neither a result nor a code: {result!r}"
            )
        if code == "CONTRACT_VALIDATE_ERROR":
            raise TokenContractMismatch(f"{contract} is not a contract here: {message}")
        raise TransactionRefused(code, message)
    ret = mapping(body.get("transaction", {})).get("ret") or [{}]
    if (
        isinstance(ret, list)
        and ret
        and isinstance(ret[0], Mapping)
        and ret[0].get("ret") == "FAILED"
    ):
        raise TransactionRefused("REVERT", message or "the call reverts")
    outputs = body.get("constant_result")
    if not isinstance(outputs, list) or len(outputs) != 1:
        raise MalformedAnswer("constant_result is not one output")
    return ConstantCall(
        words=_hex(outputs[0], "constant_result"), energy_used=count(body, "energy_used")
    )


def parse_uint256(words: str) -> int:
    if len(words) != 64:
        raise MalformedAnswer(f"expected one 32-byte word, got {len(words) // 2} bytes")
    return int(words, 16)


PRICE_PARAMETERS: Final = {
    "energy_fee": "getEnergyFee",
    "transaction_fee": "getTransactionFee",
    "free_net_limit": "getFreeNetLimit",
    "create_account_fee": "getCreateAccountFee",
    "create_new_account_fee": "getCreateNewAccountFeeInSystemContract",
}


def parse_chain_prices(answer: Any) -> ChainPrices:
    """``wallet/getchainparameters``: ``{"chainParameter": [{"key", "value"}]}``; a parameter
    whose value is 0 has no ``value``."""
    entries = mapping(answer).get("chainParameter")
    if not isinstance(entries, list):
        raise MalformedAnswer("getchainparameters has no chainParameter list")
    values: dict[str, Mapping[str, Any]] = {}
    for entry in entries:
        item = mapping(entry)
        if isinstance(item.get("key"), str):
            values[item["key"]] = item
    missing = sorted(set(PRICE_PARAMETERS.values()) - values.keys())
    if missing:
        raise MalformedAnswer(f"getchainparameters lacks {missing}")
    return ChainPrices(
        **{name: count(values[key], "value") for name, key in PRICE_PARAMETERS.items()}
    )
