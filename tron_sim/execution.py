"""What a transaction does to the ledger: TRX transfers and calls to the USDT contract.

Validation (`validate`) is what java-tron checks before accepting a transaction at broadcast and
again when it packs a block; a transaction that fails it never reaches a block. It includes
java-tron's BandwidthProcessor: the transaction's bytes are paid from the sender's free daily
allowance, else by burning TRX, else the transaction is refused (`BANDWITH_ERROR`). Execution
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
# GrpcAPI.Return.response_code for AccountResourceInsufficientException: java-tron's own spelling.
BANDWIDTH_ERROR_CODE = "BANDWITH_ERROR"
BANDWIDTH_ERROR_MESSAGE = "Account resource insufficient error."
# Free bandwidth recovers linearly over java-tron's window: 28,800 slots of 3 s, i.e. 24 h.
NET_WINDOW_MS = 86_400_000
# What java-tron adds to the serialized transaction for its result (Constant.MAX_RESULT_SIZE_IN_TX).
MAX_RESULT_SIZE_IN_TX = 64


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Chain parameters that price a transaction (mainnet values as of 2025)."""

    energy_fee: int = 100  # SUN per energy unit (getEnergyFee)
    transaction_fee: int = 1_000  # SUN per byte of bandwidth burnt (getTransactionFee)
    free_net_limit: int = 600  # free bandwidth bytes per account per day (getFreeNetLimit)
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


@dataclass(frozen=True, slots=True)
class NetBill:
    """How a transaction's bandwidth is paid (java-tron's TransactionTrace net bill)."""

    size: int  # bytes: the serialized transaction without its result, plus 64
    net_usage: int = 0  # bytes taken from the sender's free allowance
    net_fee: int = 0  # SUN burnt: size × getTransactionFee, or getCreateAccountFee
    at: int = 0  # head block time it was computed at, ms: when the free allowance was used


def validate(ledger: Ledger, tx: Transaction, fees: FeeSchedule, now: int) -> NetBill:
    """Bandwidth, then the actuator's validate(), as java-tron checks them.

    `now` is the head block's time (java-tron's head slot), the same at broadcast and when the
    next block is packed on that head. Raises BroadcastRejected: `BANDWITH_ERROR` when neither
    the free allowance nor the sender's TRX pays the bandwidth, else CONTRACT_VALIDATE_ERROR.
    Returns the bandwidth bill `execute` charges.
    """
    if not ledger.exists(tx.owner):
        raise _reject(f"Validate {tx.kind} error, no OwnerAccount.")
    bill = plan_bandwidth(ledger, tx, fees, now)
    available = ledger.get("trx", tx.owner) - bill.net_fee
    if tx.kind == TRANSFER:
        _validate_transfer(ledger, tx, fees, available)
        return bill
    if tx.contract_address != USDT_ADDRESS:
        raise _reject("No contract or not a smart contract")
    if not 0 <= tx.fee_limit <= fees.max_fee_limit:
        raise _reject(f"feeLimit must be >= 0 and <= {fees.max_fee_limit}")
    if tx.call_value or tx.call_token_value:
        raise _reject("The simulator's USDT contract is not payable")
    return bill


def _validate_transfer(ledger: Ledger, tx: Transaction, fees: FeeSchedule, available: int) -> None:
    """TransferActuator.validate, on the balance left once the bandwidth is paid."""
    validate_transfer_contract(ledger, tx, fees, available)


def _address_valid(address: bytes) -> bool:
    """DecodeUtil.addressValid: 21 bytes starting with 0x41."""
    return len(address) == 21 and address[0] == 0x41


def validate_transfer_contract(
    ledger: Ledger, tx: Transaction, fees: FeeSchedule, balance: int | None = None
) -> None:
    """TransferActuator.validate, its checks in java-tron's order and with its messages.

    `balance` is the owner's TRX to check against: at broadcast what is left once the bandwidth
    is paid; when `wallet/createtransaction` builds the transaction, the balance itself (None).
    """
    if not _address_valid(tx.owner):
        raise _reject("Invalid ownerAddress!")
    if not _address_valid(tx.to):
        raise _reject("Invalid toAddress!")
    if tx.to == tx.owner:
        raise _reject("Cannot transfer TRX to yourself.")
    if not ledger.exists(tx.owner):
        raise _reject("Validate TransferContract error, no OwnerAccount.")
    if tx.amount <= 0:
        raise _reject("Amount must be greater than 0.")
    fee = 0 if ledger.exists(tx.to) else fees.create_account_fee
    if tx.to == USDT_ADDRESS:  # an account of type Contract (ForbidTransferToContract is on)
        raise _reject("Cannot transfer TRX to a smartContract.")
    if (ledger.get("trx", tx.owner) if balance is None else balance) < tx.amount + fee:
        raise _reject("Validate TransferContract error, balance is not sufficient.")


def bandwidth(tx: Transaction) -> int:
    """Bytes of bandwidth java-tron charges: the serialized transaction without its `ret`, plus
    a 64-byte allowance for the result (BandwidthProcessor.consume)."""
    return proto.transaction_size(tx.raw, tx.signatures) + MAX_RESULT_SIZE_IN_TX


def recovered_usage(used: int, last: int, now: int) -> int:
    """Free bandwidth still counted as used at `now` (ms) when `used` bytes were counted at
    `last`: it recovers linearly to 0 over 24 h of block time, rounded to the nearest byte."""
    if used <= 0:
        return 0
    elapsed = now - last
    if elapsed <= 0:
        return used
    if elapsed >= NET_WINDOW_MS:
        return 0
    return (used * (NET_WINDOW_MS - elapsed) + NET_WINDOW_MS // 2) // NET_WINDOW_MS


def free_net_used(ledger: Ledger, address: bytes, now: int) -> int:
    return recovered_usage(
        ledger.get("free_net_used", address), ledger.get("free_net_time", address), now
    )


def plan_bandwidth(ledger: Ledger, tx: Transaction, fees: FeeSchedule, now: int) -> NetBill:
    """BandwidthProcessor.consume for an account with nothing staked.

    A TRX transfer that creates the recipient burns getCreateAccountFee instead (whatever its
    size). Otherwise the whole transaction comes from the free allowance if what is left of it
    covers it, else the sender burns size × getTransactionFee; if the balance cannot cover that,
    java-tron refuses the transaction (AccountResourceInsufficientException).
    """
    size = bandwidth(tx)
    balance = ledger.get("trx", tx.owner)
    if tx.kind == TRANSFER and not ledger.exists(tx.to):
        fee = fees.create_account_net_fee
    elif size <= fees.free_net_limit - free_net_used(ledger, tx.owner, now):
        return NetBill(size=size, net_usage=size, at=now)
    else:
        fee = size * fees.transaction_fee
    if balance < fee:
        raise BroadcastRejected(BANDWIDTH_ERROR_CODE, BANDWIDTH_ERROR_MESSAGE)
    return NetBill(size=size, net_fee=fee, at=now)


def _charge_bandwidth(ledger: Ledger, tx: Transaction, bill: NetBill, receipt: Receipt) -> None:
    if bill.net_usage:
        used = free_net_used(ledger, tx.owner, bill.at) + bill.net_usage
        ledger.set("free_net_used", tx.owner, used)
        ledger.set("free_net_time", tx.owner, bill.at)
    if bill.net_fee:
        ledger.add("trx", tx.owner, -bill.net_fee)
    receipt.net_usage = bill.net_usage
    receipt.net_fee = bill.net_fee
    receipt.fee += bill.net_fee


def execute(
    ledger: Ledger, tx: Transaction, block_timestamp: int, fees: FeeSchedule, bill: NetBill
) -> Receipt:
    """Run a validated transaction; `bill` is what `validate` returned on this same state."""
    receipt = Receipt(txid=tx.txid, contract_ret="SUCCESS")
    _charge_bandwidth(ledger, tx, bill, receipt)  # java-tron pays bandwidth before executing
    if tx.kind == TRANSFER:
        _execute_transfer(ledger, tx, block_timestamp, fees, receipt)
    else:
        _execute_call(ledger, tx, fees, receipt)
    return receipt


def _execute_transfer(
    ledger: Ledger, tx: Transaction, block_timestamp: int, fees: FeeSchedule, receipt: Receipt
) -> None:
    fee = 0
    if not ledger.exists(tx.to):
        fee = fees.create_account_fee
        ledger.set("trx", tx.to, 0)
        ledger.set("created", tx.to, block_timestamp)
    receipt.fee += fee
    ledger.add("trx", tx.owner, -(tx.amount + fee))
    ledger.add("trx", tx.to, tx.amount)


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


def _execute_call(ledger: Ledger, tx: Transaction, fees: FeeSchedule, receipt: Receipt) -> None:
    receipt.contract_address = tx.contract_address
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
    receipt.energy_fee = energy * fees.energy_fee
    receipt.fee += receipt.energy_fee
    ledger.add("trx", tx.owner, -receipt.energy_fee)
    if move is not None:
        _apply(ledger, move, receipt)


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
