"""The payment: one TRC-20 transfer to an invoice's deposit address, followed to finality.

``detected → confirming → confirmed``; ``detected|confirming → failed``;
``confirming → orphaned → detected`` when a reorganisation replaces the transfer's block and the
transfer is included again. The identity is the transfer's: ``<tx_hash>:<log_index>``.

The chain watcher only reports transfers inside blocks, so the block holding a transfer is its
first confirmation: detecting a payment moves it to confirming at once (and to confirmed when one
confirmation is enough). Chain heads arrive for every tracked payment; a head that changes
nothing (stale, or for a payment that is no longer counting) yields no events.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, assert_never

from pydantic import Field

from app.domain.aggregate import Aggregate
from app.domain.commands import (
    DetectPayment,
    FailPayment,
    OrphanPayment,
    PaymentCommand,
    UpdateConfirmations,
)
from app.domain.confirmations import confirmations_at
from app.domain.errors import PaymentNotFound
from app.domain.events import (
    PaymentConfirmationsData,
    PaymentConfirmationsUpdated,
    PaymentConfirmed,
    PaymentDetected,
    PaymentDetectedData,
    PaymentEvent,
    PaymentFailed,
    PaymentFailedData,
    PaymentOrphaned,
    PaymentOrphanedData,
)
from app.domain.fields import (
    BlockId,
    BlockNumber,
    Confirmations,
    Identifier,
    TronAddress,
    TxHash,
    UtcDatetime,
)
from app.domain.money import PositiveUsdt
from app.domain.statuses import PAYMENT_TRANSITIONS, PaymentStatus, check_transition


class Payment(Aggregate[PaymentEvent]):
    AGGREGATE: ClassVar[str] = "payment"

    payment_id: Identifier
    invoice_id: Identifier
    deposit_address: TronAddress
    from_address: TronAddress
    tx_hash: TxHash
    log_index: int = Field(ge=0)
    amount: PositiveUsdt
    block_number: BlockNumber
    block_id: BlockId
    block_timestamp: UtcDatetime
    required_confirmations: int = Field(ge=1)
    confirmations: Confirmations = 0
    status: PaymentStatus = PaymentStatus.DETECTED
    confirmed_at: UtcDatetime | None = None
    failure_reason: str | None = None

    @property
    def aggregate_id(self) -> str:
        return self.payment_id

    @property
    def counts(self) -> bool:
        """Whether the invoice counts this payment's amount as received."""
        return self.status in {
            PaymentStatus.DETECTED,
            PaymentStatus.CONFIRMING,
            PaymentStatus.CONFIRMED,
        }

    # --- deciding -------------------------------------------------------------------------------

    @classmethod
    def detect(cls, command: DetectPayment) -> list[PaymentEvent]:
        """The events of a newly detected payment, counted up to the command's chain head."""
        detected = PaymentDetected.record(
            aggregate_id=command.payment_id,
            aggregate_version=1,
            merchant_id=command.merchant_id,
            causation_id=command.command_id,
            occurred_at=command.block_timestamp,
            data=_detected_data(command),
        )
        payment = cls.replay([detected])
        return [detected, *payment._count(command, _head_of(command), command.block_timestamp)]

    def decide(self, command: PaymentCommand) -> list[PaymentEvent]:
        """The events ``command`` yields on this payment; raises if the rules forbid it."""
        self._check_addressed(command.aggregate_id)
        already = self.events_caused_by(command.command_id)
        if already:
            return already
        match command:
            case DetectPayment():
                return self._redetect(command)
            case UpdateConfirmations():
                return self._count(command, command.head_number, command.observed_at)
            case OrphanPayment():
                return self._orphan(command)
            case FailPayment():
                return self._fail(command)
            case _:  # pragma: no cover - mypy proves every command is handled
                assert_never(command)

    def _redetect(self, command: DetectPayment) -> list[PaymentEvent]:
        if self.status is not PaymentStatus.ORPHANED:
            return []  # already tracked: a re-observation of a transfer that still counts
        check_transition(
            PAYMENT_TRANSITIONS,
            self.AGGREGATE,
            self.payment_id,
            self.status,
            PaymentStatus.DETECTED,
        )
        detected = self._record(
            PaymentDetected, command.command_id, command.block_timestamp, _detected_data(command)
        )
        after = self.apply(detected)
        return [detected, *after._count(command, _head_of(command), command.block_timestamp)]

    def _count(
        self, command: DetectPayment | UpdateConfirmations, head_number: int, at: datetime
    ) -> list[PaymentEvent]:
        confirmations = confirmations_at(head_number, self.block_number)
        if self.status is PaymentStatus.DETECTED:
            if confirmations == 0:
                return []
            self._to(PaymentStatus.CONFIRMING)
            counted = self._record(
                PaymentConfirmationsUpdated,
                command.command_id,
                at,
                self._confirmations_data(confirmations, head_number),
            )
            return [counted, *self.apply(counted)._count(command, head_number, at)]
        if self.status is not PaymentStatus.CONFIRMING:
            return []  # confirmed, failed or orphaned: the head no longer matters here
        if confirmations >= self.required_confirmations:
            self._to(PaymentStatus.CONFIRMED)
            data = self._confirmations_data(confirmations, head_number)
            return [self._record(PaymentConfirmed, command.command_id, at, data)]
        if confirmations <= self.confirmations:
            return []  # a stale or repeated head
        data = self._confirmations_data(confirmations, head_number)
        return [self._record(PaymentConfirmationsUpdated, command.command_id, at, data)]

    def _orphan(self, command: OrphanPayment) -> list[PaymentEvent]:
        if command.block_id != self.block_id or self.status is PaymentStatus.ORPHANED:
            return []  # an earlier inclusion of the transfer, or already orphaned
        # From confirmed too: a reorg deeper than the required confirmations. The invoice
        # reopens and its settlement is reversed (docs/reliability.md); a failed payment moved
        # no money and cannot be orphaned.
        was_confirmed = self.status is PaymentStatus.CONFIRMED
        self._to(PaymentStatus.ORPHANED)
        data = PaymentOrphanedData(
            invoice_id=self.invoice_id,
            amount=self.amount,
            block_number=self.block_number,
            block_id=self.block_id,
            was_confirmed=was_confirmed,
        )
        return [self._record(PaymentOrphaned, command.command_id, command.orphaned_at, data)]

    def _fail(self, command: FailPayment) -> list[PaymentEvent]:
        self._to(PaymentStatus.FAILED)
        data = PaymentFailedData(
            invoice_id=self.invoice_id, amount=self.amount, reason=command.reason
        )
        return [self._record(PaymentFailed, command.command_id, command.failed_at, data)]

    def _to(self, target: PaymentStatus) -> None:
        check_transition(PAYMENT_TRANSITIONS, self.AGGREGATE, self.payment_id, self.status, target)

    def _confirmations_data(self, confirmations: int, head_number: int) -> PaymentConfirmationsData:
        return PaymentConfirmationsData(
            invoice_id=self.invoice_id,
            amount=self.amount,
            confirmations=confirmations,
            required_confirmations=self.required_confirmations,
            head_number=head_number,
        )

    # --- evolving -------------------------------------------------------------------------------

    @classmethod
    def _born(cls, event: PaymentEvent) -> Payment:
        if not isinstance(event, PaymentDetected):
            raise ValueError(f"a payment's history starts with PaymentDetected, not {event.TYPE}")
        data = event.data
        return cls(
            payment_id=event.aggregate_id,
            merchant_id=event.merchant_id,
            invoice_id=data.invoice_id,
            deposit_address=data.deposit_address,
            from_address=data.from_address,
            tx_hash=data.tx_hash,
            log_index=data.log_index,
            amount=data.amount,
            block_number=data.block_number,
            block_id=data.block_id,
            block_timestamp=data.block_timestamp,
            required_confirmations=data.required_confirmations,
        )

    def _evolve(self, event: PaymentEvent) -> Payment:
        match event:
            case PaymentDetected():
                return self.model_copy(
                    update={
                        "status": PaymentStatus.DETECTED,
                        "block_number": event.data.block_number,
                        "block_id": event.data.block_id,
                        "block_timestamp": event.data.block_timestamp,
                        "confirmations": 0,
                    }
                )
            case PaymentConfirmationsUpdated():
                return self.model_copy(
                    update={
                        "status": PaymentStatus.CONFIRMING,
                        "confirmations": event.data.confirmations,
                    }
                )
            case PaymentConfirmed():
                return self.model_copy(
                    update={
                        "status": PaymentStatus.CONFIRMED,
                        "confirmations": event.data.confirmations,
                        "confirmed_at": event.occurred_at,
                    }
                )
            case PaymentOrphaned():
                return self.model_copy(
                    update={
                        "status": PaymentStatus.ORPHANED,
                        "confirmations": 0,
                        "confirmed_at": None,
                    }
                )
            case PaymentFailed():
                return self.model_copy(
                    update={"status": PaymentStatus.FAILED, "failure_reason": event.data.reason}
                )
            case _:  # pragma: no cover - tests/unit/domain/test_events.py applies every type
                raise TypeError(f"a payment cannot apply {event.event_type}: not a payment event")


def _detected_data(command: DetectPayment) -> PaymentDetectedData:
    return PaymentDetectedData(
        invoice_id=command.invoice_id,
        deposit_address=command.deposit_address,
        from_address=command.from_address,
        tx_hash=command.tx_hash,
        log_index=command.log_index,
        amount=command.amount,
        block_number=command.block_number,
        block_id=command.block_id,
        block_timestamp=command.block_timestamp,
        required_confirmations=command.required_confirmations,
    )


def _head_of(command: DetectPayment) -> int:
    # The watcher saw the transfer in a processed block, so the head is at least that block.
    return command.block_number if command.head_number is None else command.head_number


def handle_payment(
    payment: Payment | None, command: PaymentCommand
) -> tuple[Payment, list[PaymentEvent]]:
    """Decide and apply in one step: the new state and the events to publish."""
    if payment is None:
        if not isinstance(command, DetectPayment):
            raise PaymentNotFound(
                f"payment {command.aggregate_id} does not exist", param="payment_id"
            )
        events = Payment.detect(command)
        return Payment.replay(events), events
    events = payment.decide(command)
    return payment.apply_all(events), events
