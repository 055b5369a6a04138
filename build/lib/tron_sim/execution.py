"""What a transaction does to the ledger: TRX transfers and calls to the USDT contract.

Validation (`validate`) is what java-tron checks before accepting a transaction at broadcast and
again when it packs a block; a transaction that fails it never reaches a block. Execution
(`execute`) always yields a receipt: a contract call that reverts or runs out of energy is still
included, with `contractRet` REVERT / OUT_OF_ENERGY and the energy fee burnt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tron_sim import proto
from tron_sim.encoding import address_word, uint_word, word_to_address
from tron_sim.errors import BroadcastRejected
from tron_sim.ledger import Ledger
from tron_sim.token import (
    APPROVAL_TOPIC,
    SEL_APPROVE,
    SEL_TRANSFER,
    SEL_TRANSFER_FROM,
    TRANSFER_TOPIC,
    USDT_ADDRESS,
)
from tron_sim.transactions import TRANSFER, Transaction

REVERT_MESSAGE = "REVERT opcode executed"
UINT256_MAX = (1 << 256) - 1


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Chain parameters that price a transaction (mainnet values as of 2025)."""

    energy_fee: int = 100  # SUN per energy unit (getEnergyFee)
    create_account_fee: int = 1_000_000  # getCreateNewAccountFeeInSystemContract
    create_account_net_fee: int = 100_000  # getCreateAccountFee (bandwidth of the creation)
    max_fee_limit: int = 15_000_000_000  # getMaxFeeLimit
    # Energy of a USDT transfer: a recipient that already holds USDT, and one that does not
    # (a new storage slot). Widely observed mainnet figures.
    energy_to_holder: int = 64_285
    energy_to_new_holder: int = 130_285
    energy_approve: int = 22_314
    energy_revert: int = 2_117


@dataclass(frozen=True, slots=True)
class Log:
    address: bytes  # 21 bytes; printed as 20-byte hex (no 41)
    topics: tuple[str, ...]
    data: str


@dataclass(slots=True)
class Receipt:
    """protocol.TransactionInfo, less the block fields the chain fills in."""

    txid: str
    contract_ret: str  # the transaction's ret[0].contractRet
    fee: int = 0
    net_usage: int = 0
    net_fee: int = 0
    energy_usage_total: int = 0
    energy_fee: int = 0
    receipt_result: str | None = None  # contract calls only: SUCCESS, REVERT, OUT_OF_ENERGY
    contract_address: bytes = b""
    contract_result: bytes = b""
    res_message: str = ""
    logs: list[Log] = field(default_factory=list)
    block_number: int = 0
    block_timestamp: int = 0

    @property
    def failed(self) -> bool:
        return self.contract_ret not in ("SUCCESS",)


def _reject(message: str) -> BroadcastRejected:
    return BroadcastRejected("CONTRACT_VALIDATE_ERROR", message)


def validate(ledger: Ledger, tx: Transaction, fees: FeeSchedule) -> None:
    """The actuator's validate(): raises BroadcastRejected(CONTRACT_VALIDATE_ERROR, …)."""
    if tx.kind == TRANSFER:
        _validate_transfer(ledger, tx, fees)
        return
    if tx.contract_address != USDT_ADDRESS:
        raise _reject("No contract or not a smart contract")
    if not ledger.exists(tx.owner):
        raise _reject("Validate TriggerSmartContract error, no OwnerAccount.")
    if not 0 <= tx.fee_limit <= fees.max_fee_limit:
        raise _reject(f"feeLimit must be >= 0 and <= {fees.max_fee_limit}")
    if tx.call_value or tx.call_token_value:
        raise _reject("The simulator's USDT contract is not payable")


def _validate_transfer(ledger: Ledger, tx: Transaction, fees: FeeSchedule) -> None:
    if len(tx.to) != 21:
        raise _reject("Invalid toAddress!")
    if tx.to == tx.owner:
        raise _reject("Cannot transfer TRX to yourself.")
    if tx.amount <= 0:
        raise _reject("Amount must be greater than 0.")
    if not ledger.exists(tx.owner):
        raise _reject("Validate TransferContract error, no OwnerAccount.")
    fee = 0 if ledger.exists(tx.to) else fees.create_account_fee + fees.create_account_net_fee
    if ledger.get("trx", tx.owner) < tx.amount + fee:
        raise _reject("Validate TransferContract error, balance is not sufficient.")
    if tx.to == USDT_ADDRESS:
        raise _reject("Cannot transfer TRX to a smart contract.")


def bandwidth(tx: Transaction) -> int:
    """Bytes of bandwidth java-tron charges: the serialized transaction plus a 64-byte result."""
    return len(proto.transaction(tx.raw, tx.signatures, "SUCCESS")) + 64


def execute(ledger: Ledger, tx: Transaction, block_timestamp: int, fees: FeeSchedule) -> Receipt:
    if tx.kind == TRANSFER:
        return _execute_transfer(ledger, tx, block_timestamp, fees)
    return _execute_call(ledger, tx, fees)


def _execute_transfer(
    ledger: Ledger, tx: Transaction, block_timestamp: int, fees: FeeSchedule
) -> Receipt:
    receipt = Receipt(txid=tx.txid, contract_ret="SUCCESS")
    if ledger.exists(tx.to):
        receipt.net_usage = bandwidth(tx)
    else:
        receipt.net_fee = fees.create_account_net_fee
        receipt.fee = fees.create_account_fee + fees.create_account_net_fee
        ledger.set("trx", tx.to, 0)
        ledger.set("created", tx.to, block_timestamp)
    ledger.add("trx", tx.owner, -(tx.amount + receipt.fee))
    ledger.add("trx", tx.to, tx.amount)
    return receipt


@dataclass(frozen=True, slots=True)
class _TokenMove:
    """The effect a successful USDT call would have."""

    energy: int
    debit_from: bytes = b""
    credit_to: bytes = b""
    amount: int = 0
    spender: bytes = b""  # transferFrom: whose allowance shrinks
    approve: tuple[bytes, bytes, int] | None = None


def plan_call(ledger: Ledger, tx: Transaction, fees: FeeSchedule) -> _TokenMove | None:
    """The effect of the call, or None when the contract reverts."""
    data = tx.data
    if tx.forced_fail:
        return None
    selector, args = data[:4], data[4:]
    if selector == SEL_TRANSFER and len(args) >= 64:
        to, amount = word_to_address(args[0:32]), int.from_bytes(args[32:64], "big")
        return _plan_move(ledger, tx.owner, to, amount, fees)
    if selector == SEL_TRANSFER_FROM and len(args) >= 96:
        source, to = word_to_address(args[0:32]), word_to_address(args[32:64])
        amount = int.from_bytes(args[64:96], "big")
        if ledger.get("allowance", (source, tx.owner)) < amount:
            return None
        move = _plan_move(ledger, source, to, amount, fees)
        if move is None:
            return None
        return _TokenMove(
            energy=move.energy + 5_000,
            debit_from=source,
            credit_to=to,
            amount=amount,
            spender=tx.owner,
        )
    if selector == SEL_APPROVE and len(args) >= 64:
        spender, amount = word_to_address(args[0:32]), int.from_bytes(args[32:64], "big")
        return _TokenMove(energy=fees.energy_approve, approve=(tx.owner, spender, amount))
    return None


def _plan_move(
    ledger: Ledger, source: bytes, to: bytes, amount: int, fees: FeeSchedule
) -> _TokenMove | None:
    if ledger.get("token", source) < amount or amount > UINT256_MAX:
        return None
    energy = fees.energy_to_holder if ledger.get("token", to) > 0 else fees.energy_to_new_holder
    return _TokenMove(energy=energy, debit_from=source, credit_to=to, amount=amount)


def _execute_call(ledger: Ledger, tx: Transaction, fees: FeeSchedule) -> Receipt:
    receipt = Receipt(
        txid=tx.txid,
        contract_ret="SUCCESS",
        contract_address=tx.contract_address,
        net_usage=bandwidth(tx),
    )
    move = plan_call(ledger, tx, fees)
    energy = fees.energy_revert if move is None else move.energy
    affordable = min(tx.fee_limit, ledger.get("trx", tx.owner)) // fees.energy_fee
    if energy > affordable:
        receipt.contract_ret = "OUT_OF_ENERGY"
        receipt.res_message = (
            f"Not enough energy for 'SSTORE' operation executing: curInvokeEnergyLimit"
            f"[{affordable}], curOpEnergy[{energy - affordable}], usedEnergy[{affordable}]"
        )
        energy, move = affordable, None
    elif move is None:
        receipt.contract_ret = "REVERT"
        receipt.res_message = REVERT_MESSAGE
    receipt.receipt_result = receipt.contract_ret
    receipt.energy_usage_total = energy
    receipt.energy_fee = receipt.fee = energy * fees.energy_fee
    ledger.add("trx", tx.owner, -receipt.fee)
    if move is not None:
        _apply(ledger, move, receipt)
    return receipt


def _apply(ledger: Ledger, move: _TokenMove, receipt: Receipt) -> None:
    receipt.contract_result = bytes.fromhex(uint_word(1))
    if move.approve is not None:
        owner, spender, amount = move.approve
        ledger.set("allowance", (owner, spender), amount)
        receipt.logs.append(
            Log(
                address=USDT_ADDRESS,
                topics=(APPROVAL_TOPIC, address_word(owner), address_word(spender)),
                data=uint_word(amount),
            )
        )
        return
    if move.spender:
        ledger.add("allowance", (move.debit_from, move.spender), -move.amount)
    ledger.add("token", move.debit_from, -move.amount)
    ledger.add("token", move.credit_to, move.amount)
    receipt.logs.append(
        Log(
            address=USDT_ADDRESS,
            topics=(TRANSFER_TOPIC, address_word(move.debit_from), address_word(move.credit_to)),
            data=uint_word(move.amount),
        )
    )
