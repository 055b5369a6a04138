"""Transactions: packed from the JSON a client sends, or built by the simulator, and printed back
as java-tron prints them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tron_sim import proto
from tron_sim.encoding import parse_address, sha256, show_address
from tron_sim.errors import BadAddress, MalformedTransaction

TRANSFER = "TransferContract"
TRIGGER = "TriggerSmartContract"


@dataclass(slots=True, eq=False)
class Transaction:
    """One transaction with its one contract: a TRX transfer or a contract call."""

    kind: str
    owner: bytes
    ref_block_bytes: bytes
    ref_block_hash: bytes
    expiration: int
    timestamp: int
    to: bytes = b""
    amount: int = 0
    contract_address: bytes = b""
    data: bytes = b""
    call_value: int = 0
    call_token_value: int = 0
    token_id: int = 0
    fee_limit: int = 0
    memo: bytes = b""
    ref_block_num: int = 0
    permission_id: int = 0
    type_url: str = ""
    signatures: list[bytes] = field(default_factory=list)
    # Set by /sim/fail-next or {"fail": true}: executes as a REVERT whatever the balances.
    forced_fail: bool = False
    raw: bytes = b""
    txid: str = ""

    def __post_init__(self) -> None:
        if not self.type_url:
            self.type_url = proto.TYPE_URL_PREFIX + self.kind
        self.raw = self._encode_raw()
        self.txid = sha256(self.raw).hex()

    @property
    def digest(self) -> bytes:
        return bytes.fromhex(self.txid)

    def _encode_raw(self) -> bytes:
        if self.kind == TRANSFER:
            value = proto.transfer_contract(self.owner, self.to, self.amount)
        else:
            value = proto.trigger_smart_contract(
                self.owner,
                self.contract_address,
                self.data,
                self.call_value,
                self.call_token_value,
                self.token_id,
            )
        return proto.transaction_raw(
            ref_block_bytes=self.ref_block_bytes,
            ref_block_num=self.ref_block_num,
            ref_block_hash=self.ref_block_hash,
            expiration=self.expiration,
            memo=self.memo,
            contract_bytes=proto.contract(self.kind, self.type_url, value, self.permission_id),
            timestamp=self.timestamp,
            fee_limit=self.fee_limit,
        )

    def _value_json(self, visible: bool) -> dict[str, Any]:
        if self.kind == TRANSFER:
            value: dict[str, Any] = {
                "owner_address": show_address(self.owner, visible),
                "to_address": show_address(self.to, visible),
            }
            if self.amount:
                value["amount"] = self.amount
            return value
        value = {
            "owner_address": show_address(self.owner, visible),
            "contract_address": show_address(self.contract_address, visible),
        }
        if self.data:
            value["data"] = self.data.hex()
        for key in ("call_value", "call_token_value", "token_id"):
            if getattr(self, key):
                value[key] = getattr(self, key)
        return value

    def _raw_json(self, visible: bool) -> dict[str, Any]:
        contract: dict[str, Any] = {
            "parameter": {"value": self._value_json(visible), "type_url": self.type_url},
            "type": self.kind,
        }
        if self.permission_id:
            contract["Permission_id"] = self.permission_id
        fields: list[tuple[str, Any]] = [
            ("ref_block_bytes", self.ref_block_bytes.hex()),
            ("ref_block_num", self.ref_block_num),
            ("ref_block_hash", self.ref_block_hash.hex()),
            ("expiration", self.expiration),
            ("data", self.memo.hex()),
            ("timestamp", self.timestamp),
            ("fee_limit", self.fee_limit),
        ]
        # proto3: a field holding its default value is not printed.
        return {"contract": [contract], **{key: value for key, value in fields if value}}

    def to_json(self, visible: bool, contract_ret: str | None = None) -> dict[str, Any]:
        """printTransactionToJSON: `ret` only once the transaction is in a block."""
        out: dict[str, Any] = {}
        if contract_ret is not None:
            out["ret"] = [{"contractRet": contract_ret}]
        if self.signatures:
            out["signature"] = [sig.hex() for sig in self.signatures]
        out["txID"] = self.txid
        out["raw_data"] = self._raw_json(visible)
        out["raw_data_hex"] = self.raw.hex()
        return out


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedTransaction(f"{key} must be an integer")
    return value


def _hex(obj: dict[str, Any], key: str) -> bytes:
    value = obj.get(key) or ""
    if not isinstance(value, str):
        raise MalformedTransaction(f"{key} must be a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise MalformedTransaction(f"{key} is not hex: INVALID hex String") from None


def _address(obj: dict[str, Any], key: str) -> bytes:
    value = obj.get(key)
    if value in (None, ""):
        return b""
    try:
        return parse_address(value)
    except BadAddress as exc:
        raise MalformedTransaction(f"{key}: {exc}") from None


def from_json(body: dict[str, Any]) -> Transaction:
    """Util.packTransaction: the transaction a java-tron node would build from this JSON."""
    raw_data = body.get("raw_data")
    if not isinstance(raw_data, dict):
        raise MalformedTransaction("raw_data is missing")
    contracts = raw_data.get("contract")
    if not isinstance(contracts, list) or len(contracts) != 1 or not isinstance(contracts[0], dict):
        raise MalformedTransaction("Invalid transaction: no valid contract")
    contract = contracts[0]
    kind = contract.get("type")
    if kind not in proto.CONTRACT_TYPES:
        raise MalformedTransaction(f"contract type {kind!r} is not supported by the simulator")
    parameter = contract.get("parameter") or {}
    value = parameter.get("value") if isinstance(parameter, dict) else None
    if not isinstance(value, dict):
        raise MalformedTransaction("contract parameter value is missing")
    signatures = body.get("signature") or []
    if not isinstance(signatures, list) or not all(isinstance(s, str) for s in signatures):
        raise MalformedTransaction("signature must be a list of hex strings")
    try:
        sig_bytes = [bytes.fromhex(sig) for sig in signatures]
    except ValueError:
        raise MalformedTransaction("signature is not hex") from None
    common: dict[str, Any] = {
        "kind": kind,
        "owner": _address(value, "owner_address"),
        "ref_block_bytes": _hex(raw_data, "ref_block_bytes"),
        "ref_block_num": _int(raw_data, "ref_block_num"),
        "ref_block_hash": _hex(raw_data, "ref_block_hash"),
        "expiration": _int(raw_data, "expiration"),
        "timestamp": _int(raw_data, "timestamp"),
        "fee_limit": _int(raw_data, "fee_limit"),
        "memo": _hex(raw_data, "data"),
        "permission_id": _int(contract, "Permission_id"),
        "type_url": parameter.get("type_url") or "",
        "signatures": sig_bytes,
    }
    if kind == TRANSFER:
        return Transaction(to=_address(value, "to_address"), amount=_int(value, "amount"), **common)
    return Transaction(
        contract_address=_address(value, "contract_address"),
        data=_hex(value, "data"),
        call_value=_int(value, "call_value"),
        call_token_value=_int(value, "call_token_value"),
        token_id=_int(value, "token_id"),
        **common,
    )
