"""The invoice: what a merchant asks a customer to pay, and what has been paid towards it.

Status (``pending → confirming → paid``, ``pending → expired``, ``pending → cancelled``, and
``confirming → expired`` while underpaid) is one axis; ``payment_exception`` (underpaid, overpaid,
paid_late) is the other. The money is never lost from view: every payment that counts is kept in
``payments`` by payment id, and ``amount_received``, ``amount_confirmed`` and ``amount_due``
follow from them.

- confirming: some money has been seen at the deposit address; the invoice waits until confirmed
  money covers ``amount``, then it is paid and settled for everything confirmed.
- A payment whose block is reorganised away, or that fails, stops counting; the invoice keeps
  its status and waits (the transfer is normally re-included within seconds).
- A payment that arrives when the invoice is expired or cancelled is recorded and flagged
  paid_late; the status does not change and nothing is settled automatically.
- A payment that arrives after the invoice is paid is recorded (overpaid) but not settled.
See docs/domain.md for why.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final, Literal, assert_never
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from app.domain.aggregate import Aggregate
from app.domain.commands import (
    ApplyPaymentConfirmed,
    ApplyPaymentDetected,
    ApplyPaymentFailed,
    ApplyPaymentOrphaned,
    CancelInvoice,
    CreateInvoice,
    ExpireInvoice,
    InvoiceCommand,
    ResolveInvoice,
)
from app.domain.confirmations import required_confirmations
from app.domain.errors import (
    AlreadyExists,
    InvalidTransition,
    InvoiceNotDue,
    InvoiceNotFound,
    InvoiceNotUnderpaid,
    PaymentAlreadyConfirmed,
)
from app.domain.events import (
    InvoiceCancelled,
    InvoiceCancelledData,
    InvoiceCreated,
    InvoiceCreatedData,
    InvoiceEvent,
    InvoiceExpired,
    InvoicePaid,
    InvoicePaidData,
    InvoicePaymentConfirmed,
    InvoicePaymentData,
    InvoicePaymentDetected,
    InvoicePaymentReverted,
    InvoicePaymentRevertedData,
    InvoiceProgress,
    InvoiceResolved,
    InvoiceResolvedData,
)
from app.domain.fees import FeePercentage, TolerancePercentage
from app.domain.fields import Identifier, TronAddress, UtcDatetime
from app.domain.money import PositiveUsdt, format_usdt
from app.domain.statuses import (
    INVOICE_TRANSITIONS,
    InvoiceStatus,
    PaymentException,
    check_transition,
)

# An invoice reopened by a reorg does not expire for this long after: the orphaned transfer is
# usually included again in the next blocks (a Tron transaction stays valid until its expiration,
# one minute after it was signed by most wallets), and then it is on time again.
REINCLUSION_WINDOW: Final = timedelta(minutes=10)

# A payment arriving in these statuses is late: the invoice no longer asks for money.
LATE_STATUSES: Final = frozenset({InvoiceStatus.EXPIRED, InvoiceStatus.CANCELLED})


SHOP_URL_PLACEHOLDERS: Final = ("{invoice_id}", "{order_id}")


def shop_link(template: str | None, invoice_id: str, invoice: Mapping[str, Any]) -> str | None:
    """``redirect_url`` or ``cancel_url`` for one invoice: its placeholders filled in, each value
    percent-encoded (an order id is the merchant's free text and may hold ``&`` or ``/``)."""
    if not template:
        return None
    order_id = invoice.get("order_id") or ""
    return template.replace("{invoice_id}", quote(invoice_id, safe="")).replace(
        "{order_id}", quote(str(order_id), safe="")
    )


class InvoicePayment(BaseModel):
    """A payment the invoice counts: its amount, whether it is confirmed, whether it was late."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: PositiveUsdt
    confirmed: bool = False
    late: bool = False


class Invoice(Aggregate[InvoiceEvent]):
    AGGREGATE: ClassVar[str] = "invoice"

    invoice_id: Identifier
    amount: PositiveUsdt
    currency: Literal["USDT"] = "USDT"
    deposit_address: TronAddress
    required_confirmations: int = Field(ge=1)
    fee_percentage: FeePercentage
    created_at: UtcDatetime
    expires_at: UtcDatetime
    order_id: str | None = None
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    redirect_url: str | None = None
    cancel_url: str | None = None
    status: InvoiceStatus = InvoiceStatus.PENDING
    payment_exception: PaymentException | None = None
    payments: dict[str, InvoicePayment] = Field(default_factory=dict)
    paid_at: UtcDatetime | None = None
    expired_at: UtcDatetime | None = None
    cancelled_at: UtcDatetime | None = None
    cancellation_reason: str | None = None
    underpaid_tolerance: TolerancePercentage | None = None
    # How an underpayment was resolved (the last resolution), and how often the deadline moved.
    resolution: Literal["accept", "refund", "extend"] | None = None
    extensions: int = 0
    # Times a reorg took a confirmed payment from the paid invoice; each payment in full after
    # that settles in a round of its own (the previous round's settlement reversed).
    reopenings: int = 0
    reopened_at: UtcDatetime | None = None
    # What the last round settled (gross, micro-USDT): a reopened invoice is paid again once that
    # much (at most its amount) is confirmed again, e.g. the 9.90 of 10 a merchant accepted.
    settled_amount: int | None = None
    # Payments seen or confirmed while the invoice was paid: the customer's money outside every
    # settlement (refunded as "received" money), so never counted towards a later round, and a
    # reorg taking one of them does not reverse the settlement.
    unsettled_payments: tuple[str, ...] = ()

    @property
    def aggregate_id(self) -> str:
        return self.invoice_id

    @property
    def amount_received(self) -> int:
        """Every payment that counts, confirmed or not (micro-USDT)."""
        return sum(payment.amount for payment in self.payments.values())

    @property
    def amount_confirmed(self) -> int:
        return sum(payment.amount for payment in self.payments.values() if payment.confirmed)

    @property
    def amount_due(self) -> int:
        """What the customer still has to send; never negative."""
        return max(0, self.amount - self.amount_received)

    @property
    def amount_settleable(self) -> int:
        """What a settlement of the invoice would take: the confirmed payments that arrived
        before it was paid (micro-USDT)."""
        return sum(
            payment.amount
            for payment_id, payment in self.payments.items()
            if payment.confirmed and payment_id not in self.unsettled_payments
        )

    @property
    def amount_to_pay(self) -> int:
        """What must be confirmed for the invoice to be paid: its amount, or, reopened by a reorg,
        no more than its last round settled (an accepted underpayment stays accepted)."""
        if self.reopenings and self.settled_amount is not None:
            return min(self.amount, self.settled_amount)
        return self.amount

    @property
    def settlement_round(self) -> int:
        """The round the invoice is (or will be) settled in: 1 unless a reorg reopened it."""
        return self.reopenings + 1

    def expiry_due(self, now: datetime) -> bool:
        """Whether ``ExpireInvoice`` at ``now`` would expire the invoice: for the expiry timer."""
        if now < self.expires_at:
            return False
        if self.reopened_at is not None and now < self.reopened_at + REINCLUSION_WINDOW:
            return False  # reopened by a reorg: its transfer is usually included again soon
        if self.status is InvoiceStatus.PENDING:
            return True
        return self.status is InvoiceStatus.CONFIRMING and self.amount_received < self.amount_to_pay

    # --- deciding -------------------------------------------------------------------------------

    @classmethod
    def create(cls, command: CreateInvoice) -> list[InvoiceEvent]:
        """The events creating the invoice ``command`` describes."""
        data = InvoiceCreatedData(
            amount=command.amount,
            deposit_address=command.deposit_address,
            required_confirmations=required_confirmations(
                command.amount, command.confirmation_override
            ),
            fee_percentage=command.fee_percentage,
            expires_at=command.expires_at,
            order_id=command.order_id,
            description=command.description,
            metadata=command.metadata,
            redirect_url=command.redirect_url,
            cancel_url=command.cancel_url,
            underpaid_tolerance=command.underpaid_tolerance,
        )
        created = InvoiceCreated.record(
            aggregate_id=command.invoice_id,
            aggregate_version=1,
            merchant_id=command.merchant_id,
            causation_id=command.command_id,
            occurred_at=command.created_at,
            data=data,
        )
        return [created]

    def decide(self, command: InvoiceCommand) -> list[InvoiceEvent]:
        """The events ``command`` yields on this invoice; raises if the rules forbid it."""
        self._check_addressed(command.aggregate_id)
        already = self.events_caused_by(command.command_id)
        if already:
            return already
        match command:
            case CreateInvoice():
                raise AlreadyExists(f"invoice {self.invoice_id} already exists", param="invoice_id")
            case CancelInvoice():
                return self._cancel(command)
            case ExpireInvoice():
                return self._expire(command)
            case ApplyPaymentDetected():
                return self._payment_detected(command)
            case ApplyPaymentConfirmed():
                return self._payment_confirmed(command)
            case ApplyPaymentOrphaned():
                return self._payment_reverted(command, "orphaned", command.orphaned_at)
            case ApplyPaymentFailed():
                return self._payment_reverted(command, "failed", command.failed_at)
            case ResolveInvoice():
                return self._resolve(command)
            case _:  # pragma: no cover - mypy proves every command is handled
                assert_never(command)

    def _cancel(self, command: CancelInvoice) -> list[InvoiceEvent]:
        status = self._transition(InvoiceStatus.CANCELLED)
        data = InvoiceCancelledData(**self._progress(self.payments, status), reason=command.reason)
        return [self._record(InvoiceCancelled, command.command_id, command.cancelled_at, data)]

    def _expire(self, command: ExpireInvoice) -> list[InvoiceEvent]:
        status = self._transition(InvoiceStatus.EXPIRED)
        if self.status is InvoiceStatus.CONFIRMING and self.amount_received >= self.amount_to_pay:
            raise InvalidTransition(
                self.AGGREGATE,
                self.invoice_id,
                self.status,
                status,
                INVOICE_TRANSITIONS[self.status],
                reason="the full amount arrived in time and waits for confirmations",
            )
        if command.expired_at < self.expires_at:
            raise InvoiceNotDue(
                f"invoice {self.invoice_id} expires at {self.expires_at.isoformat()}",
                param="expired_at",
            )
        if self._within_tolerance():
            # The merchant accepts an underpayment this close to the amount: paid, not expired.
            return self._accept(command.command_id, command.expired_at, "tolerance")
        data = InvoiceProgress(**self._progress(self.payments, status))
        return [self._record(InvoiceExpired, command.command_id, command.expired_at, data)]

    def _within_tolerance(self) -> bool:
        tolerance = self.underpaid_tolerance
        received = self.amount_received
        return (
            tolerance is not None
            and 0 < received < self.amount
            and self.amount_confirmed == received
            and not any(payment.late for payment in self.payments.values())
            and received * 100 >= self.amount * tolerance
        )

    # --- resolving an underpayment ----------------------------------------------------------------

    def _resolve(self, command: ResolveInvoice) -> list[InvoiceEvent]:
        received = self.amount_received
        underpaid = (
            self.status in (InvoiceStatus.CONFIRMING, InvoiceStatus.EXPIRED)
            and 0 < received < self.amount
        )
        # Paid in full, but after expiry: nothing is due, and nothing was settled by itself.
        paid_late = (
            self.status is InvoiceStatus.EXPIRED
            and received >= self.amount
            and any(payment.late for payment in self.payments.values())
        )
        if not (underpaid or paid_late) or self.resolution == "refund":
            raise InvoiceNotUnderpaid(
                f"invoice {self.invoice_id} is {self.status} with {format_usdt(received)} of"
                f" {format_usdt(self.amount)} USDT received"
                + (" and its payments refunded" if self.resolution == "refund" else "")
                + "; only an underpaid invoice (open or expired) or one paid after it expired"
                " is resolved",
                param="invoice_id",
            )
        if command.action == "extend" and paid_late:
            raise InvoiceNotUnderpaid(
                f"invoice {self.invoice_id} received all of its amount (late): nothing is due;"
                " accept or refund it",
                param="action",
            )
        if command.action == "extend":
            assert command.expires_at is not None  # the command checks it
            data = InvoiceResolvedData(
                **self._progress(self.payments, InvoiceStatus.CONFIRMING, late=False),
                action="extend",
                resolved_by="merchant",
                expires_at=command.expires_at,
            )
            return [self._record(InvoiceResolved, command.command_id, command.resolved_at, data)]
        if self.amount_confirmed != received:
            raise InvoiceNotUnderpaid(
                f"invoice {self.invoice_id} has {format_usdt(received - self.amount_confirmed)}"
                " USDT not yet confirmed: resolve it once every payment is confirmed",
                param="invoice_id",
            )
        if command.action == "accept":
            return self._accept(command.command_id, command.resolved_at, "merchant")
        # refund: the invoice stops asking for money; the refund returns all that was received.
        status = InvoiceStatus.EXPIRED
        if self.status is not InvoiceStatus.EXPIRED:
            status = self._transition(InvoiceStatus.EXPIRED)
        data = InvoiceResolvedData(
            **self._progress(self.payments, status),
            action="refund",
            resolved_by="merchant",
            refund_id=command.refund_id,
            refund_address=command.refund_address,
            refund_amount=received,
        )
        return [self._record(InvoiceResolved, command.command_id, command.resolved_at, data)]

    def _accept(
        self, command_id: str, at: datetime, by: Literal["merchant", "tolerance"]
    ) -> list[InvoiceEvent]:
        """Paid for what was received: settled on that (the settlement takes the confirmed)."""
        resolved_data = InvoiceResolvedData(
            **self._progress(self.payments, self.status), action="accept", resolved_by=by
        )
        resolved = self._record(InvoiceResolved, command_id, at, resolved_data)
        return [resolved, self.apply(resolved)._paid(command_id, at)]

    def _payment_detected(self, command: ApplyPaymentDetected) -> list[InvoiceEvent]:
        if command.payment_id in self.payments:
            return []
        late = self.status in LATE_STATUSES
        payment = InvoicePayment(amount=command.amount, late=late)
        data = self._payment_data(command.payment_id, payment)
        return [self._record(InvoicePaymentDetected, command.command_id, command.detected_at, data)]

    def _payment_confirmed(self, command: ApplyPaymentConfirmed) -> list[InvoiceEvent]:
        known = self.payments.get(command.payment_id)
        if known is not None and known.confirmed:
            return []
        # Confirmed without having been seen detected (a reordered delivery): count it now.
        late = known.late if known is not None else self.status in LATE_STATUSES
        payment = InvoicePayment(amount=command.amount, confirmed=True, late=late)
        data = self._payment_data(command.payment_id, payment)
        confirmed = self._record(
            InvoicePaymentConfirmed, command.command_id, command.confirmed_at, data
        )
        after = self.apply(confirmed)
        if (
            after.status is not InvoiceStatus.CONFIRMING
            or after.amount_settleable < after.amount_to_pay
        ):
            return [confirmed]
        return [confirmed, after._paid(command.command_id, command.confirmed_at)]

    def _payment_reverted(
        self,
        command: ApplyPaymentOrphaned | ApplyPaymentFailed,
        reason: Literal["orphaned", "failed"],
        occurred_at: datetime,
    ) -> list[InvoiceEvent]:
        payment = self.payments.get(command.payment_id)
        if payment is None:
            return []
        if payment.confirmed and reason == "failed":
            # A confirmed payment's transaction succeeded: the payment cannot fail any more.
            raise PaymentAlreadyConfirmed(
                f"payment {command.payment_id} of invoice {self.invoice_id} is confirmed "
                f"and cannot be {reason}",
                param="payment_id",
            )
        # A confirmed payment orphaned: a reorg deeper than the confirmations required. A paid
        # invoice whose settlement took the payment reopens (that round's settlement is reversed
        # by the settlement agent) and is paid again, in the next round, once enough is confirmed
        # again. A payment that came after it was paid was never settled: nothing to reverse.
        reopen = (
            payment.confirmed
            and self.status is InvoiceStatus.PAID
            and command.payment_id not in self.unsettled_payments
        )
        status = self._transition(InvoiceStatus.CONFIRMING) if reopen else self.status
        remaining = {pid: p for pid, p in self.payments.items() if pid != command.payment_id}
        data = InvoicePaymentRevertedData(
            **self._progress(remaining, status),
            payment_id=command.payment_id,
            payment_amount=payment.amount,
            reason=reason,
            was_confirmed=payment.confirmed,
            reversed_round=self.settlement_round if reopen else None,
        )
        reverted = self._record(InvoicePaymentReverted, command.command_id, occurred_at, data)
        after = self.apply(reverted)
        if not reopen or after.amount_settleable < after.amount_to_pay:
            return [reverted]
        # What is still confirmed covers the amount (an overpaid invoice): paid again at once.
        return [reverted, after._paid(command.command_id, occurred_at)]

    def _paid(self, command_id: str, occurred_at: datetime) -> InvoicePaid:
        status = self._transition(InvoiceStatus.PAID)
        data = InvoicePaidData(
            **self._progress(self.payments, status),
            fee_percentage=self.fee_percentage,
            settlement_round=self.settlement_round,
            settled_amount=self.amount_settleable,
        )
        return self._record(InvoicePaid, command_id, occurred_at, data)

    def _payment_data(self, payment_id: str, payment: InvoicePayment) -> InvoicePaymentData:
        payments = {**self.payments, payment_id: payment}
        status = self.status
        if status is InvoiceStatus.PENDING:
            status = self._transition(InvoiceStatus.CONFIRMING)
        return InvoicePaymentData(
            **self._progress(payments, status),
            payment_id=payment_id,
            payment_amount=payment.amount,
            late=payment.late,
        )

    def _transition(self, target: InvoiceStatus) -> InvoiceStatus:
        return check_transition(
            INVOICE_TRANSITIONS, self.AGGREGATE, self.invoice_id, self.status, target
        )

    def _progress(
        self,
        payments: Mapping[str, InvoicePayment],
        status: InvoiceStatus,
        *,
        late: bool | None = None,
    ) -> dict[str, Any]:
        """Status and amounts with ``payments``; ``late=False``: as if none were late (an
        extended invoice counts what arrived while it was expired towards its amount)."""
        if late is False:
            payments = {pid: p.model_copy(update={"late": False}) for pid, p in payments.items()}
        received = sum(payment.amount for payment in payments.values())
        return {
            "status": status,
            "payment_exception": payment_exception_for(self.amount, payments),
            "amount": self.amount,
            "amount_received": received,
            "amount_confirmed": sum(p.amount for p in payments.values() if p.confirmed),
            "amount_due": max(0, self.amount - received),
        }

    # --- evolving -------------------------------------------------------------------------------

    @classmethod
    def _born(cls, event: InvoiceEvent) -> Invoice:
        if not isinstance(event, InvoiceCreated):
            raise ValueError(f"an invoice's history starts with InvoiceCreated, not {event.TYPE}")
        data = event.data
        return cls(
            invoice_id=event.aggregate_id,
            merchant_id=event.merchant_id,
            amount=data.amount,
            currency=data.currency,
            deposit_address=data.deposit_address,
            required_confirmations=data.required_confirmations,
            fee_percentage=data.fee_percentage,
            created_at=event.occurred_at,
            expires_at=data.expires_at,
            order_id=data.order_id,
            description=data.description,
            metadata=data.metadata,
            redirect_url=data.redirect_url,
            cancel_url=data.cancel_url,
            underpaid_tolerance=data.underpaid_tolerance,
        )

    def _evolve(self, event: InvoiceEvent) -> Invoice:
        match event:
            case InvoicePaymentDetected() | InvoicePaymentConfirmed():
                return self._payment_counted(event)
            case InvoicePaymentReverted():
                return self._payment_gone(event)
            case InvoicePaid():
                settled = event.data.settled_amount
                return self._moved(
                    event.data,
                    paid_at=event.occurred_at,
                    settled_amount=event.data.amount_confirmed if settled is None else settled,
                )
            case InvoiceExpired():
                return self._moved(event.data, expired_at=event.occurred_at)
            case InvoiceCancelled():
                return self._moved(
                    event.data,
                    cancelled_at=event.occurred_at,
                    cancellation_reason=event.data.reason,
                )
            case InvoiceResolved():
                data = event.data
                if data.action != "extend":
                    return self._moved(data, resolution=data.action)
                assert data.expires_at is not None
                payments = {
                    pid: p.model_copy(update={"late": False}) for pid, p in self.payments.items()
                }
                return self._moved(
                    data,
                    resolution="extend",
                    payments=payments,
                    expires_at=data.expires_at,
                    expired_at=None,
                    extensions=self.extensions + 1,
                )
            case InvoiceCreated():
                raise ValueError(f"invoice {self.invoice_id} was already created")
            case _:  # pragma: no cover - tests/unit/domain/test_events.py applies every type
                raise TypeError(f"a invoice cannot apply {event.event_type}: not a invoice event")

    def _payment_counted(self, event: InvoicePaymentDetected | InvoicePaymentConfirmed) -> Invoice:
        payment = InvoicePayment(
            amount=event.data.payment_amount,
            confirmed=isinstance(event, InvoicePaymentConfirmed),
            late=event.data.late,
        )
        payments = {**self.payments, event.data.payment_id: payment}
        unsettled = self.unsettled_payments
        if self.status is InvoiceStatus.PAID and event.data.payment_id not in unsettled:
            unsettled = (*unsettled, event.data.payment_id)  # no settlement takes it
        return self._moved(event.data, payments=payments, unsettled_payments=unsettled)

    def _payment_gone(self, event: InvoicePaymentReverted) -> Invoice:
        gone = event.data.payment_id
        payments = {pid: p for pid, p in self.payments.items() if pid != gone}
        unsettled = tuple(pid for pid in self.unsettled_payments if pid != gone)
        if event.data.reversed_round is None:
            return self._moved(event.data, payments=payments, unsettled_payments=unsettled)
        return self._moved(
            event.data,
            payments=payments,
            unsettled_payments=unsettled,
            paid_at=None,
            reopenings=self.reopenings + 1,
            reopened_at=event.occurred_at,
        )

    def _moved(self, progress: InvoiceProgress, **changes: Any) -> Invoice:
        return self.model_copy(
            update={
                "status": progress.status,
                "payment_exception": progress.payment_exception,
                **changes,
            }
        )


def payment_exception_for(
    amount: int, payments: Mapping[str, InvoicePayment]
) -> PaymentException | None:
    """The exception axis, from the payments that count.

    paid_late wins (the merchant must decide about that money); then overpaid and underpaid by
    the amount received, so the customer page reacts as soon as money is seen.
    """
    if any(payment.late for payment in payments.values()):
        return PaymentException.PAID_LATE
    received = sum(payment.amount for payment in payments.values())
    if received > amount:
        return PaymentException.OVERPAID
    if 0 < received < amount:
        return PaymentException.UNDERPAID
    return None


def handle_invoice(
    invoice: Invoice | None, command: InvoiceCommand
) -> tuple[Invoice, list[InvoiceEvent]]:
    """Decide and apply in one step: the new state and the events to publish.

    ``invoice`` is the current state from the table, or ``None`` when there is none yet.
    """
    if invoice is None:
        if not isinstance(command, CreateInvoice):
            raise InvoiceNotFound(
                f"invoice {command.aggregate_id} does not exist", param="invoice_id"
            )
        events = Invoice.create(command)
        return Invoice.replay(events), events
    events = invoice.decide(command)
    return invoice.apply_all(events), events
