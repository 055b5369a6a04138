"""Sweeps: the settled USDT of a deposit address moved into the hot wallet, and what it cost.

docs/money-out.md, "Sweeps". A deposit address holds no TRX, so a sweep first has the hot wallet
send it what the USDT transfer will burn (energy, and bandwidth once the address's free allowance
is spent), then the deposit key moves the USDT. Every transaction is followed to its solidified
block, and each transition returns the next state and the ledger movement it books, so the
service commits them together:

    due ─► topping_up ─► sweeping ─► confirmed
     │  └───────────────► │  │
     │        ▲           │  └─► failed (what was burned is booked; the USDT did not move)
     │        └── due ◄───┘ OUT_OF_ENERGY: the burn is booked, a larger top-up follows
     └─► failed

The ledger (app/domain/ledger.py, credit positive, debit negative), per solidified transaction:

- top-up of T sun that burned F: ``deposit:<a> −T``, ``hot_wallet +T``; ``network_costs −F``,
  ``hot_wallet +F`` (TRX);
- sweep of x that burned F: ``hot_wallet −x``, ``customer_funds +x`` (USDT);
  ``network_costs −F``, ``deposit:<a> +F`` (TRX);
- a sweep that failed on chain: only its burn.

A transaction is replaced only when it can never be mined (never accepted by the node, or in no
block and expired as of the solidified block) — the caller checks, and says so with
``earlier_lost`` — so one sweep never has two live transactions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from app.domain.ledger import CUSTOMER_FUNDS, HOT_WALLET, NETWORK_COSTS, Movement, moves
from app.domain.money import format_usdt


class SweepStage(StrEnum):
    DUE = "due"
    TOPPING_UP = "topping_up"
    SWEEPING = "sweeping"
    CONFIRMED = "confirmed"
    FAILED = "failed"


class TxKind(StrEnum):
    TOPUP = "topup"  # TRX, hot wallet → deposit address (signer purpose ``sweep_topup``)
    SWEEP = "sweep"  # USDT, deposit address → hot wallet (signer purpose ``sweep``)


OPEN: Final = frozenset({SweepStage.DUE, SweepStage.TOPPING_UP, SweepStage.SWEEPING})
TRANSITIONS: Final = {
    SweepStage.DUE: frozenset({SweepStage.TOPPING_UP, SweepStage.SWEEPING, SweepStage.FAILED}),
    SweepStage.TOPPING_UP: frozenset(
        {SweepStage.TOPPING_UP, SweepStage.SWEEPING, SweepStage.FAILED}
    ),
    SweepStage.SWEEPING: frozenset(
        {SweepStage.SWEEPING, SweepStage.DUE, SweepStage.CONFIRMED, SweepStage.FAILED}
    ),
}

# A TRC-20 transfer is about 345 bytes on the wire (java-tron counts the protobuf without `ret`
# plus 64); a few bytes of slack so that an estimate is never short.
SWEEP_TX_BYTES: Final = 350
# Energy is bought with a margin over the constant call's figure (dynamic energy on mainnet can
# move between the estimate and the block), and a larger one after each OUT_OF_ENERGY.
ENERGY_MARGIN_PERCENT: Final = 110
ENERGY_MARGIN_STEP_PERCENT: Final = 25
# Top-ups are rounded up to 0.01 TRX: an operator reads them, and the rest waits for the next sweep.
TOPUP_ROUNDING_SUN: Final = 10_000
# After this many OUT_OF_ENERGY receipts the sweep fails: something else is wrong (prices).
MAX_OUT_OF_ENERGY: Final = 3


def deposit_account(address: str) -> str:
    """The TRX the platform put on deposit address ``address`` (a held, debit-side account)."""
    return f"deposit:{address}"


def format_sun(sun: int) -> str:
    """Sun as TRX, a decimal string ("6.4285", "-0.5"): six decimals, as micro-USDT."""
    return f"-{format_usdt(-sun)}" if sun < 0 else format_usdt(sun)


class SweepStateError(ValueError):
    """A transition the sweep's stage or transaction does not allow (a bug, or a lost race)."""

    def __init__(self, sweep_id: str, stage: SweepStage, wanted: str) -> None:
        super().__init__(f"sweep {sweep_id} is {stage}; it cannot {wanted}")
        self.stage = stage


@dataclass(frozen=True)
class TopUpPlan:
    """What a sweep will burn, and what the address must be sent first (all in sun)."""

    energy: int  # the transfer's energy (``triggerconstantcontract``)
    energy_price: int  # sun per unit (``getEnergyFee``)
    bandwidth_price: int  # sun per byte once the free allowance is spent (``getTransactionFee``)
    free_bandwidth: int  # bytes the address may still use for free today
    trx_on_address: int  # what it holds already (left over from an earlier sweep)
    out_of_energy: int = 0  # earlier attempts of this sweep that ran out

    @property
    def energy_budget(self) -> int:
        """The sweep's fee limit: its energy at the chain's price, with the margin."""
        percent = ENERGY_MARGIN_PERCENT + ENERGY_MARGIN_STEP_PERCENT * self.out_of_energy
        return _round_up(_ceil_div(self.energy * self.energy_price * percent, 100))

    @property
    def bandwidth_cost(self) -> int:
        """Burned for bandwidth when the free allowance does not cover the whole transaction."""
        return 0 if self.free_bandwidth >= SWEEP_TX_BYTES else SWEEP_TX_BYTES * self.bandwidth_price

    @property
    def needed(self) -> int:
        return self.energy_budget + self.bandwidth_cost

    @property
    def topup(self) -> int:
        """What the hot wallet sends (0: the address holds enough)."""
        missing = self.needed - self.trx_on_address
        return 0 if missing <= 0 else _round_up(missing)


def _ceil_div(value: int, divisor: int) -> int:
    return -(-value // divisor)


def _round_up(sun: int) -> int:
    return _ceil_div(sun, TOPUP_ROUNDING_SUN) * TOPUP_ROUNDING_SUN


@dataclass(frozen=True)
class ChainTransaction:
    """The transaction a sweep is signing or following: built by the node, signed, broadcast."""

    kind: TxKind
    number: int  # the sweep's attempt: signing request ``<sweep_id>:<number>``
    txid: str
    raw_data: dict[str, Any]
    raw_data_hex: str
    expiration_ms: int
    amount: int  # sun (top-up) or micro-USDT (sweep)
    fee_limit: int = 0
    signature: str | None = None
    broadcast_accepted: bool = False
    block_number: int | None = None  # where the node has it now; None: in no block


@dataclass(frozen=True)
class SweepReceipt:
    """``gettransactioninfobyid`` of a solidified transaction, in sun, bytes and energy."""

    block_number: int
    fee: int  # everything burned: energy_fee + net_fee (+ account creation for a top-up)
    energy_usage: int
    energy_fee: int
    net_usage: int  # bytes taken from the free allowance
    net_fee: int  # sun burned for bandwidth
    result: str  # SUCCESS, OUT_OF_ENERGY, REVERT, FAILED…

    @property
    def succeeded(self) -> bool:
        return self.result == "SUCCESS"


@dataclass(frozen=True)
class SweepCosts:
    """What a sweep cost so far, over all its transactions (sun, energy units, bytes)."""

    topped_up: int = 0  # TRX sent to the address
    topup_fees: int = 0  # burned by the hot wallet for the top-ups
    sweep_fees: int = 0  # burned by the address for the sweep transactions, failed ones too
    energy_usage: int = 0
    energy_fee: int = 0
    net_usage: int = 0
    net_fee: int = 0
    out_of_energy: int = 0

    @property
    def burned(self) -> int:
        return self.topup_fees + self.sweep_fees

    def after(self, tx: ChainTransaction, receipt: SweepReceipt) -> SweepCosts:
        resources = {
            "energy_usage": self.energy_usage + receipt.energy_usage,
            "energy_fee": self.energy_fee + receipt.energy_fee,
            "net_usage": self.net_usage + receipt.net_usage,
            "net_fee": self.net_fee + receipt.net_fee,
        }
        if tx.kind is TxKind.TOPUP:
            topped_up = self.topped_up + (tx.amount if receipt.succeeded else 0)
            return replace(
                self, topped_up=topped_up, topup_fees=self.topup_fees + receipt.fee, **resources
            )
        out_of_energy = self.out_of_energy + (receipt.result == "OUT_OF_ENERGY")
        return replace(
            self,
            sweep_fees=self.sweep_fees + receipt.fee,
            out_of_energy=out_of_energy,
            **resources,
        )


@dataclass(frozen=True)
class BookedTransaction:
    """One solidified transaction of a sweep, as booked (a row of the cost record)."""

    sweep_id: str
    tx: ChainTransaction
    receipt: SweepReceipt


@dataclass(frozen=True)
class Sweep:
    sweep_id: str
    deposit_address: str
    derivation_index: int
    invoice_id: str
    merchant_id: str
    amount: int  # micro-USDT to move: settled at the address and not swept yet
    stage: SweepStage
    created_at: datetime
    updated_at: datetime
    version: int = 1
    tx: ChainTransaction | None = None
    attempts: int = 0  # transactions built so far (the slot is empty between two of them)
    energy_budget: int = 0  # the sweep transaction's fee limit, planned with its top-up
    costs: SweepCosts = SweepCosts()
    failure_reason: str | None = None
    swept_txid: str | None = None
    finished_at: datetime | None = None

    @property
    def request_id(self) -> str:
        """The signing request of the current transaction (the signer answers it once)."""
        return f"{self.sweep_id}:{self.tx.number if self.tx else 0}"

    @property
    def next_number(self) -> int:
        return self.attempts + 1

    def signing_request(self, hot_wallet: str, token_contract: str) -> dict[str, Any]:
        """The body sent to the signer for the current transaction (docs/money-out.md §3)."""
        tx = self._current("ask the signer")
        if tx.kind is TxKind.TOPUP:
            return {
                "request_id": self.request_id,
                "account": "hot_wallet",
                "purpose": "sweep_topup",
                "kind": "trx",
                "to": self.deposit_address,
                "amount": tx.amount,
                "token_contract": None,
                "raw_data_hex": tx.raw_data_hex,
                # Lets the signer derive the destination itself, whatever its index.
                "destination_account": f"deposit:{self.derivation_index}",
            }
        return {
            "request_id": self.request_id,
            "account": f"deposit:{self.derivation_index}",
            "purpose": "sweep",
            "kind": "trc20",
            "to": hot_wallet,
            "amount": tx.amount,
            "token_contract": token_contract,
            "raw_data_hex": tx.raw_data_hex,
        }

    # --- transitions: each returns (next state, ledger movement or None, booked receipt) -----

    def top_up(
        self, tx: ChainTransaction, energy_budget: int, at: datetime, *, earlier_lost: bool = False
    ) -> SweepStep:
        """A top-up transaction is being signed: the first, or one replacing a top-up that can
        never be mined."""
        if tx.kind is not TxKind.TOPUP:
            raise ValueError("a top-up sends TRX")
        self._replaceable(tx, earlier_lost)
        state = self._to(
            SweepStage.TOPPING_UP, at, tx=tx, attempts=tx.number, energy_budget=energy_budget
        )
        return SweepStep(state, None, None)

    def send(self, tx: ChainTransaction, at: datetime, *, earlier_lost: bool = False) -> SweepStep:
        """The USDT transfer is being signed (after the top-up, or with TRX already there)."""
        if tx.kind is not TxKind.SWEEP or tx.amount != self.amount:
            raise ValueError(f"sweep {self.sweep_id} moves {self.amount} USDT, not {tx}")
        self._replaceable(tx, earlier_lost)
        state = self._to(
            SweepStage.SWEEPING, at, tx=tx, attempts=tx.number, energy_budget=tx.fee_limit
        )
        return SweepStep(state, None, None)

    def signed(self, signature: str, at: datetime) -> Sweep:
        tx = self._current("be signed")
        return self._same(at, tx=replace(tx, signature=signature))

    def broadcast(self, at: datetime) -> Sweep:
        """The node accepted the signed transaction: from now on it is followed, not replaced."""
        tx = self._current("be broadcast")
        if tx.signature is None:
            raise SweepStateError(self.sweep_id, self.stage, "broadcast an unsigned transaction")
        return self._same(at, tx=replace(tx, broadcast_accepted=True))

    def mined(self, block_number: int | None, at: datetime) -> Sweep:
        """Where the transaction is now (None: in no block, e.g. after a reorg)."""
        tx = self._current("be mined")
        return self._same(at, tx=replace(tx, block_number=block_number))

    def topped_up(self, receipt: SweepReceipt, at: datetime) -> SweepStep:
        """The top-up is solidified: booked, and the sweep transaction comes next."""
        tx = self._solidified(TxKind.TOPUP, receipt, succeeded=True)
        state = self._to(SweepStage.SWEEPING, at, tx=None, costs=self.costs.after(tx, receipt))
        movement = moves(
            "sweep_topup",
            self.request_id,
            (deposit_account(self.deposit_address), HOT_WALLET, tx.amount, "TRX"),
            (NETWORK_COSTS, HOT_WALLET, receipt.fee, "TRX"),
        )
        return SweepStep(state, movement, BookedTransaction(self.sweep_id, tx, receipt))

    def confirm(self, receipt: SweepReceipt, at: datetime) -> SweepStep:
        """The USDT is in the hot wallet, solidified: the sweep is done."""
        tx = self._solidified(TxKind.SWEEP, receipt, succeeded=True)
        state = self._to(
            SweepStage.CONFIRMED,
            at,
            costs=self.costs.after(tx, receipt),
            swept_txid=tx.txid,
            finished_at=at,
        )
        movement = moves(
            "sweep_confirmed",
            self.request_id,
            (HOT_WALLET, CUSTOMER_FUNDS, self.amount, "USDT"),
            (NETWORK_COSTS, deposit_account(self.deposit_address), receipt.fee, "TRX"),
        )
        return SweepStep(state, movement, BookedTransaction(self.sweep_id, tx, receipt))

    def needs_more_trx(self, at: datetime, receipt: SweepReceipt | None = None) -> SweepStep:
        """The sweep transaction ran out of energy (its burn is booked; nothing moved), or the
        node refused it for bandwidth: back to ``due``, to be topped up with a larger margin."""
        tx = self._current("ask for more TRX")
        if tx.kind is not TxKind.SWEEP:
            raise SweepStateError(self.sweep_id, self.stage, "top up after a top-up")
        costs = self.costs
        movement = None
        booked = None
        if receipt is not None:
            self._solidified(TxKind.SWEEP, receipt, succeeded=False)
            costs = costs.after(tx, receipt)
            movement = self._burn_movement(tx, receipt)
            booked = BookedTransaction(self.sweep_id, tx, receipt)
        else:
            costs = replace(costs, out_of_energy=costs.out_of_energy + 1)
        if costs.out_of_energy >= MAX_OUT_OF_ENERGY:
            reason = f"out of energy {costs.out_of_energy} times; the estimate is wrong"
            state = self._to(
                SweepStage.FAILED, at, costs=costs, failure_reason=reason, finished_at=at
            )
        else:
            state = self._to(SweepStage.DUE, at, tx=None, costs=costs)
        return SweepStep(state, movement, booked)

    def fail(self, reason: str, at: datetime, receipt: SweepReceipt | None = None) -> SweepStep:
        """Refused by the signer or the node, failed on chain, or given up: the USDT stays on the
        address (it is due again later); TRX burned on chain is booked."""
        costs = self.costs
        movement = None
        booked = None
        if receipt is not None:
            tx = self._current("fail with a receipt")
            costs = costs.after(tx, receipt)
            movement = self._burn_movement(tx, receipt)
            booked = BookedTransaction(self.sweep_id, tx, receipt)
        state = self._to(
            SweepStage.FAILED, at, costs=costs, failure_reason=reason[:500], finished_at=at
        )
        return SweepStep(state, movement, booked)

    # --- helpers -----------------------------------------------------------------------------

    def _burn_movement(self, tx: ChainTransaction, receipt: SweepReceipt) -> Movement:
        payer = HOT_WALLET if tx.kind is TxKind.TOPUP else deposit_account(self.deposit_address)
        kind = "sweep_topup_failed" if tx.kind is TxKind.TOPUP else "sweep_failed"
        return moves(
            kind,
            self.request_id,
            (NETWORK_COSTS, payer, receipt.fee, "TRX"),
        )

    def _current(self, wanted: str) -> ChainTransaction:
        if self.tx is None:
            raise SweepStateError(self.sweep_id, self.stage, f"{wanted} without a transaction")
        return self.tx

    def _solidified(
        self, kind: TxKind, receipt: SweepReceipt, *, succeeded: bool
    ) -> ChainTransaction:
        tx = self._current(f"book a {kind} receipt")
        if tx.kind is not kind or not tx.broadcast_accepted:
            raise SweepStateError(self.sweep_id, self.stage, f"book a {kind} receipt for {tx.kind}")
        if receipt.succeeded is not succeeded:
            raise ValueError(f"sweep {self.sweep_id}: a {receipt.result} receipt here")
        return tx

    def _replaceable(self, tx: ChainTransaction, earlier_lost: bool) -> None:
        current = self.tx
        if current is not None and current.broadcast_accepted and not earlier_lost:
            raise SweepStateError(self.sweep_id, self.stage, "replace a broadcast transaction")
        if tx.number != self.next_number:
            raise ValueError(f"attempt {tx.number} of {self.sweep_id}, not {self.next_number}")

    def _to(self, stage: SweepStage, at: datetime, **changes: Any) -> Sweep:
        if stage not in TRANSITIONS.get(self.stage, frozenset()):
            raise SweepStateError(self.sweep_id, self.stage, f"become {stage}")
        return replace(self, stage=stage, updated_at=at, version=self.version + 1, **changes)

    def _same(self, at: datetime, **changes: Any) -> Sweep:
        if self.stage not in OPEN:
            raise SweepStateError(self.sweep_id, self.stage, "change")
        return replace(self, updated_at=at, version=self.version + 1, **changes)


@dataclass(frozen=True)
class SweepStep:
    state: Sweep
    movement: Movement | None
    booked: BookedTransaction | None


def new_sweep(
    *,
    sweep_id: str,
    deposit_address: str,
    derivation_index: int,
    invoice_id: str,
    merchant_id: str,
    amount: int,
    at: datetime,
) -> Sweep:
    """A sweep of ``amount`` (settled at the address, not swept yet, on chain) now due."""
    if amount <= 0:
        raise ValueError("a sweep moves a positive amount")
    return Sweep(
        sweep_id=sweep_id,
        deposit_address=deposit_address,
        derivation_index=derivation_index,
        invoice_id=invoice_id,
        merchant_id=merchant_id,
        amount=amount,
        stage=SweepStage.DUE,
        created_at=at,
        updated_at=at,
    )
