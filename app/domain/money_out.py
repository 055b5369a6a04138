"""Refunds and payouts: USDT sent from the hot wallet, one state machine for both.

docs/money-out.md, "Flows". Each transition returns the next state, the events it emits and the
ledger movement it books; the service commits the three together (PostgreSQL, with the
transactional outbox), so the balance, the record and the events never disagree.

    requested ─► approved ─► signing ─► broadcast ─► confirmed
        │            │          │  ▲         │
        └─► cancelled┘          │  └ rebuilt └─► failed (the amount returns to the balance)
                                └─► failed

A refund is approved when it is created and shows as ``pending`` until broadcast; a payout is
approved at once below the merchant's threshold, otherwise by a platform admin. ``signing`` may
be entered again with a new attempt (a new transaction) only when the earlier one can never be
mined: never accepted by the node, or accepted and then lost (a reorg took it out, and it is
expired as of the solidified block, in no block). A transaction the node has is followed to its
end and re-broadcast after a reorg, never replaced — so a transfer can never be paid twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal

from app.domain.events import (
    DomainEvent,
    PayoutApproved,
    PayoutApprovedData,
    PayoutCancelled,
    PayoutCancelledData,
    PayoutCreated,
    PayoutCreatedData,
    PayoutFailed,
    PayoutFailedData,
    PayoutPaid,
    PayoutPaidData,
    RefundConfirmed,
    RefundConfirmedData,
    RefundCreated,
    RefundCreatedData,
    RefundFailed,
    RefundFailedData,
)
from app.domain.ledger import (
    CUSTOMER_FUNDS,
    HOT_WALLET,
    NETWORK_COSTS,
    Movement,
    in_flight_account,
    merchant_account,
    moves,
    recharged_account,
    refunds_payable_account,
)


class TransferKind(StrEnum):
    REFUND = "refund"
    PAYOUT = "payout"


class Stage(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    SIGNING = "signing"
    BROADCAST = "broadcast"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL: Final = frozenset({Stage.CONFIRMED, Stage.FAILED, Stage.CANCELLED})
TRANSITIONS: Final = {
    Stage.REQUESTED: frozenset({Stage.APPROVED, Stage.CANCELLED}),
    Stage.APPROVED: frozenset({Stage.SIGNING, Stage.CANCELLED, Stage.FAILED}),
    Stage.SIGNING: frozenset({Stage.SIGNING, Stage.BROADCAST, Stage.FAILED}),
    Stage.BROADCAST: frozenset({Stage.SIGNING, Stage.CONFIRMED, Stage.FAILED}),
}

ID_PREFIX: Final = {TransferKind.REFUND: "rf_", TransferKind.PAYOUT: "po_"}


class TransferStateError(ValueError):
    """A transition the transfer's stage does not allow (a bug, or a request that lost a race)."""

    def __init__(self, transfer_id: str, stage: Stage, wanted: Stage) -> None:
        super().__init__(f"{transfer_id} is {stage}; it cannot become {wanted}")
        self.stage = stage


@dataclass(frozen=True)
class Attempt:
    """The transaction of one signing attempt, as the node built it (and later signed)."""

    number: int
    txid: str
    raw_data: dict[str, Any]
    raw_data_hex: str
    expiration_ms: int
    signature: str | None = None


@dataclass(frozen=True)
class Receipt:
    """What the chain says about the transaction (``gettransactioninfobyid``)."""

    block_number: int
    fee_sun: int
    energy_usage: int
    net_usage: int
    succeeded: bool
    result: str


@dataclass(frozen=True)
class OutgoingTransfer:
    transfer_id: str
    kind: TransferKind
    merchant_id: str
    amount: int
    to_address: str
    stage: Stage
    created_at: datetime
    updated_at: datetime
    approval: Literal["automatic", "admin"] = "automatic"
    network_fee_payer: Literal["platform", "merchant"] = "platform"
    network_fee_charged: int = 0
    invoice_id: str | None = None
    # Whose money: the merchant's balance (a refund of a settled invoice, a payout), or what an
    # invoice received and never settled (the refund of an underpaid invoice's resolution).
    source: Literal["balance", "received"] = "balance"
    version: int = 1
    failure_reason: str | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None
    attempt: Attempt | None = None
    broadcast_accepted: bool = False
    broadcast_at: datetime | None = None
    finished_at: datetime | None = None
    receipt: Receipt | None = None

    @property
    def request_id(self) -> str:
        """The signing request of the current attempt (the signer answers it once)."""
        number = self.attempt.number if self.attempt else 0
        return f"{self.transfer_id}:{number}"

    @property
    def status(self) -> str:
        """The stage in the kind's own words: a refund is ``pending`` until broadcast."""
        if self.kind is TransferKind.REFUND and self.stage in (
            Stage.REQUESTED,
            Stage.APPROVED,
            Stage.SIGNING,
        ):
            return "pending"
        return self.stage.value

    # --- transitions: each returns (next state, events, ledger movement or None) -------------

    def approve(self, by: str, at: datetime) -> Step:
        state = self._to(Stage.APPROVED, at, approved_by=by, approved_at=at)
        event = PayoutApproved.record(
            **state._envelope(f"approve:{self.transfer_id}", at),
            data=PayoutApprovedData(**self._amounts(), approved_by=by),
        )
        return Step(state, (event,), None)

    def cancel(self, at: datetime) -> Step:
        state = self._to(Stage.CANCELLED, at, finished_at=at)
        event = PayoutCancelled.record(
            **state._envelope(f"cancel:{self.transfer_id}", at),
            data=PayoutCancelledData(**self._amounts()),
        )
        return Step(state, (event,), self._returned("cancelled"))

    def signing(self, attempt: Attempt, at: datetime, *, earlier_lost: bool = False) -> Step:
        """A new transaction is being signed: the first, or one replacing an attempt that can
        never be mined (``earlier_lost`` when the node had accepted it: the caller has checked
        that it is in no block and expired as of the solidified block)."""
        if self.broadcast_accepted and not earlier_lost:
            raise TransferStateError(self.transfer_id, Stage.BROADCAST, Stage.SIGNING)
        expected = (self.attempt.number if self.attempt else 0) + 1
        if attempt.number != expected:
            raise ValueError(f"attempt {attempt.number} of {self.transfer_id}, not {expected}")
        state = self._to(
            Stage.SIGNING, at, attempt=attempt, broadcast_accepted=False, receipt=None, bump=False
        )
        return Step(state, (), None)

    def signed(self, signature: str, at: datetime) -> OutgoingTransfer:
        if self.stage is not Stage.SIGNING or self.attempt is None:
            raise TransferStateError(self.transfer_id, self.stage, Stage.SIGNING)
        return replace(self, attempt=replace(self.attempt, signature=signature), updated_at=at)

    def broadcast(self, at: datetime) -> Step:
        """The node accepted the signed transaction: from now on it is followed, never replaced."""
        state = self._to(Stage.BROADCAST, at, broadcast_accepted=True, broadcast_at=at, bump=False)
        return Step(state, (), None)

    def mined(self, receipt: Receipt | None, at: datetime) -> OutgoingTransfer:
        """Where the transaction is now (None: in no block, e.g. after a reorg)."""
        return replace(self, receipt=receipt, updated_at=at)

    def confirm(self, receipt: Receipt, at: datetime) -> Step:
        if self.attempt is None or not receipt.succeeded:
            raise ValueError(f"{self.transfer_id} cannot be confirmed without a successful receipt")
        state = self._to(Stage.CONFIRMED, at, receipt=receipt, finished_at=at)
        on_chain = {
            "tx_hash": self.attempt.txid,
            "block_number": receipt.block_number,
            "network_fee_sun": receipt.fee_sun,
        }
        causation = f"confirm:{self.transfer_id}"
        event: DomainEvent
        if self.kind is TransferKind.REFUND:
            event = RefundConfirmed.record(
                **state._envelope(causation, at),
                data=RefundConfirmedData(**self._amounts(), **on_chain, **self._invoice()),
            )
        else:
            event = PayoutPaid.record(
                **state._envelope(causation, at),
                data=PayoutPaidData(**self._amounts(), **on_chain),
            )
        movement = moves(
            f"{self.kind.value}_confirmed",
            self.transfer_id,
            (self.in_flight, HOT_WALLET, self.amount, "USDT"),
            (NETWORK_COSTS, HOT_WALLET, receipt.fee_sun, "TRX"),
        )
        return Step(state, (event,), movement)

    def fail(self, reason: str, at: datetime, receipt: Receipt | None = None) -> Step:
        """Refused by the signer or the node, failed on chain, or expired unmined: the amount
        (and a recharged network fee) returns to the balance; TRX burned on chain is booked."""
        state = self._to(
            Stage.FAILED, at, failure_reason=reason[:500], receipt=receipt, finished_at=at
        )
        tx_hash = self.attempt.txid if self.attempt and self.broadcast_accepted else None
        causation = f"fail:{self.transfer_id}"
        event: DomainEvent
        if self.kind is TransferKind.REFUND:
            event = RefundFailed.record(
                **state._envelope(causation, at),
                data=RefundFailedData(
                    **self._amounts(), **self._invoice(), reason=reason[:500], tx_hash=tx_hash
                ),
            )
        else:
            event = PayoutFailed.record(
                **state._envelope(causation, at),
                data=PayoutFailedData(**self._amounts(), reason=reason[:500], tx_hash=tx_hash),
            )
        burned = receipt.fee_sun if receipt is not None else 0
        movement = self._returned("failed", burned_sun=burned)
        return Step(state, (event,), movement)

    # --- helpers -------------------------------------------------------------------------------

    def _to(self, stage: Stage, at: datetime, *, bump: bool = True, **changes: Any) -> Any:
        if stage not in TRANSITIONS.get(self.stage, frozenset()):
            raise TransferStateError(self.transfer_id, self.stage, stage)
        version = self.version + 1 if bump else self.version
        return replace(self, stage=stage, updated_at=at, version=version, **changes)

    def _envelope(self, causation_id: str, at: datetime) -> dict[str, Any]:
        return {
            "aggregate_id": self.transfer_id,
            "aggregate_version": self.version,
            "merchant_id": self.merchant_id,
            "causation_id": causation_id,
            "occurred_at": at,
        }

    def _amounts(self) -> dict[str, Any]:
        return {"amount": self.amount, "address": self.to_address}

    def _invoice(self) -> dict[str, Any]:
        return {"invoice_id": self.invoice_id}

    def _returned(self, kind: str, *, burned_sun: int = 0) -> Movement:
        return moves(
            f"{self.kind.value}_{kind}",
            self.transfer_id,
            (self.in_flight, self.origin, self.amount, "USDT"),
            (
                recharged_account(self.merchant_id),
                merchant_account(self.merchant_id),
                self.network_fee_charged,
                "USDT",
            ),
            (NETWORK_COSTS, HOT_WALLET, burned_sun, "TRX"),
        )

    @property
    def origin(self) -> str:
        """The account the amount is taken from: the merchant's balance, or the customer funds
        an unsettled invoice holds on its deposit address."""
        if self.source == "received":
            return CUSTOMER_FUNDS
        return merchant_account(self.merchant_id)

    @property
    def in_flight(self) -> str:
        """Where the amount waits until final: the merchant's outgoing, or (for what was never
        the merchant's) the refunds the platform owes the customers of that merchant."""
        if self.source == "received":
            return refunds_payable_account(self.merchant_id)
        return in_flight_account(self.merchant_id)


@dataclass(frozen=True)
class Step:
    state: OutgoingTransfer
    events: tuple[DomainEvent, ...]
    movement: Movement | None


def request_transfer(
    *,
    transfer_id: str,
    kind: TransferKind,
    merchant_id: str,
    amount: int,
    to_address: str,
    at: datetime,
    approval: Literal["automatic", "admin"] = "automatic",
    invoice_id: str | None = None,
    network_fee_payer: Literal["platform", "merchant"] = "platform",
    network_fee_charged: int = 0,
    source: Literal["balance", "received"] = "balance",
    causation_id: str,
) -> Step:
    """A new refund or payout: debited from the merchant's balance at once (into in flight), or
    for ``source="received"`` from the customer funds an unsettled invoice holds."""
    if amount <= 0:
        raise ValueError("a transfer moves a positive amount")
    stage = Stage.APPROVED if approval == "automatic" else Stage.REQUESTED
    state = OutgoingTransfer(
        transfer_id=transfer_id,
        kind=kind,
        merchant_id=merchant_id,
        amount=amount,
        to_address=to_address,
        stage=stage,
        created_at=at,
        updated_at=at,
        approval=approval,
        network_fee_payer=network_fee_payer,
        network_fee_charged=network_fee_charged,
        invoice_id=invoice_id,
        source=source,
        approved_by="automatic" if approval == "automatic" else None,
        approved_at=at if approval == "automatic" else None,
    )
    event: DomainEvent
    if kind is TransferKind.REFUND:
        if invoice_id is None:
            raise ValueError("a refund belongs to an invoice")
        event = RefundCreated.record(
            **state._envelope(causation_id, at),
            data=RefundCreatedData(
                amount=amount,
                address=to_address,
                invoice_id=invoice_id,
                network_fee_payer=network_fee_payer,
                network_fee_charged=network_fee_charged,
            ),
        )
    else:
        event = PayoutCreated.record(
            **state._envelope(causation_id, at),
            data=PayoutCreatedData(amount=amount, address=to_address, approval=approval),
        )
    if source == "received" and (kind is not TransferKind.REFUND or network_fee_charged):
        raise ValueError("only a refund returns what an invoice received, free of charge")
    movement = moves(
        f"{kind.value}_requested",
        transfer_id,
        (state.origin, state.in_flight, amount, "USDT"),
        (
            merchant_account(merchant_id),
            recharged_account(merchant_id),
            network_fee_charged,
            "USDT",
        ),
    )
    return Step(state, (event,), movement)
