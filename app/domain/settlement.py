"""The settlement: a paid invoice's gross split into the platform fee and the merchant's net.

One per invoice and round (its id is derived from both), created from ``InvoicePaid`` with the
fee percentage fixed on the invoice at creation; ``pending → completed | failed``, and
``completed → reversed`` when a reorg takes a confirmed payment from the invoice (a reversal
entry books it back; the invoice, paid again, settles in the next round).
"""

from __future__ import annotations

from typing import ClassVar, assert_never

from app.domain.aggregate import Aggregate
from app.domain.commands import (
    CompleteSettlement,
    CreateSettlement,
    FailSettlement,
    ReverseSettlement,
    SettlementCommand,
)
from app.domain.errors import AlreadyExists, SettlementNotFound
from app.domain.events import (
    SettlementCompleted,
    SettlementCompletedData,
    SettlementCreated,
    SettlementCreatedData,
    SettlementEvent,
    SettlementFailed,
    SettlementFailedData,
    SettlementReversed,
    SettlementReversedData,
)
from app.domain.fees import FeePercentage, split_fee
from app.domain.fields import Identifier, UtcDatetime
from app.domain.money import PositiveUsdt, Usdt
from app.domain.statuses import SETTLEMENT_TRANSITIONS, SettlementStatus, check_transition


class Settlement(Aggregate[SettlementEvent]):
    AGGREGATE: ClassVar[str] = "settlement"

    settlement_id: Identifier
    invoice_id: Identifier
    gross_amount: PositiveUsdt
    platform_fee_amount: Usdt
    platform_fee_percentage: FeePercentage
    net_amount: Usdt
    status: SettlementStatus = SettlementStatus.PENDING
    settlement_round: int = 1
    created_at: UtcDatetime
    completed_at: UtcDatetime | None = None
    failed_at: UtcDatetime | None = None
    reversed_at: UtcDatetime | None = None
    reference: str | None = None
    failure_reason: str | None = None

    @property
    def aggregate_id(self) -> str:
        return self.settlement_id

    @classmethod
    def create(cls, command: CreateSettlement) -> list[SettlementEvent]:
        split = split_fee(command.gross_amount, command.fee_percentage)
        created = SettlementCreated.record(
            aggregate_id=command.settlement_id,
            aggregate_version=1,
            merchant_id=command.merchant_id,
            causation_id=command.command_id,
            occurred_at=command.created_at,
            data=SettlementCreatedData(
                invoice_id=command.invoice_id,
                gross_amount=split.gross_amount,
                platform_fee_amount=split.platform_fee_amount,
                platform_fee_percentage=split.platform_fee_percentage,
                net_amount=split.net_amount,
                settlement_round=command.settlement_round,
            ),
        )
        return [created]

    def decide(self, command: SettlementCommand) -> list[SettlementEvent]:
        self._check_addressed(command.aggregate_id)
        already = self.events_caused_by(command.command_id)
        if already:
            return already
        match command:
            case CreateSettlement():
                raise AlreadyExists(
                    f"invoice {self.invoice_id} is already settled by {self.settlement_id}",
                    param="invoice_id",
                )
            case CompleteSettlement():
                return self._complete(command)
            case FailSettlement():
                return self._fail(command)
            case ReverseSettlement():
                return self._reverse(command)
            case _:  # pragma: no cover - mypy proves every command is handled
                assert_never(command)

    def _complete(self, command: CompleteSettlement) -> list[SettlementEvent]:
        self._to(SettlementStatus.COMPLETED)
        data = SettlementCompletedData(
            invoice_id=self.invoice_id, net_amount=self.net_amount, reference=command.reference
        )
        return [self._record(SettlementCompleted, command.command_id, command.completed_at, data)]

    def _fail(self, command: FailSettlement) -> list[SettlementEvent]:
        self._to(SettlementStatus.FAILED)
        data = SettlementFailedData(invoice_id=self.invoice_id, reason=command.reason)
        return [self._record(SettlementFailed, command.command_id, command.failed_at, data)]

    def _reverse(self, command: ReverseSettlement) -> list[SettlementEvent]:
        self._to(SettlementStatus.REVERSED)
        data = SettlementReversedData(
            invoice_id=self.invoice_id,
            gross_amount=self.gross_amount,
            platform_fee_amount=self.platform_fee_amount,
            net_amount=self.net_amount,
            payment_id=command.payment_id,
            reference=command.reference,
        )
        return [self._record(SettlementReversed, command.command_id, command.reversed_at, data)]

    def _to(self, target: SettlementStatus) -> None:
        check_transition(
            SETTLEMENT_TRANSITIONS, self.AGGREGATE, self.settlement_id, self.status, target
        )

    @classmethod
    def _born(cls, event: SettlementEvent) -> Settlement:
        if not isinstance(event, SettlementCreated):
            raise ValueError(
                f"a settlement's history starts with SettlementCreated, not {event.TYPE}"
            )
        data = event.data
        return cls(
            settlement_id=event.aggregate_id,
            merchant_id=event.merchant_id,
            invoice_id=data.invoice_id,
            gross_amount=data.gross_amount,
            platform_fee_amount=data.platform_fee_amount,
            platform_fee_percentage=data.platform_fee_percentage,
            net_amount=data.net_amount,
            settlement_round=data.settlement_round,
            created_at=event.occurred_at,
        )

    def _evolve(self, event: SettlementEvent) -> Settlement:
        match event:
            case SettlementCompleted():
                return self._moved(
                    SettlementStatus.COMPLETED,
                    completed_at=event.occurred_at,
                    reference=event.data.reference,
                )
            case SettlementFailed():
                return self._moved(
                    SettlementStatus.FAILED,
                    failed_at=event.occurred_at,
                    failure_reason=event.data.reason,
                )
            case SettlementReversed():
                return self._moved(SettlementStatus.REVERSED, reversed_at=event.occurred_at)
            case SettlementCreated():
                raise ValueError(f"settlement {self.settlement_id} was already created")
            case _:  # pragma: no cover - tests/unit/domain/test_events.py applies every type
                raise TypeError(
                    f"a settlement cannot apply {event.event_type}: not a settlement event"
                )

    def _moved(self, status: SettlementStatus, **changes: object) -> Settlement:
        return self.model_copy(update={"status": status, **changes})


def handle_settlement(
    settlement: Settlement | None, command: SettlementCommand
) -> tuple[Settlement, list[SettlementEvent]]:
    """Decide and apply in one step: the new state and the events to publish."""
    if settlement is None:
        if not isinstance(command, CreateSettlement):
            raise SettlementNotFound(
                f"settlement {command.aggregate_id} does not exist", param="settlement_id"
            )
        events = Settlement.create(command)
        return Settlement.replay(events), events
    events = settlement.decide(command)
    return settlement.apply_all(events), events
