"""Statuses and the one transition table of each state machine.

Every status change any aggregate makes is checked here by ``check_transition``; an edge that is
not in a table does not exist, and asking for it raises ``InvalidTransition`` naming the current
status and the statuses allowed from it.

Payment anomalies are not statuses: an invoice's ``payment_exception`` (underpaid, overpaid,
paid_late) is a second axis next to its status.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final, TypeVar

from app.domain.errors import InvalidTransition


class InvoiceStatus(StrEnum):
    PENDING = "pending"
    CONFIRMING = "confirming"
    PAID = "paid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class PaymentException(StrEnum):
    """What is unusual about the money an invoice received; ``None`` when nothing is."""

    UNDERPAID = "underpaid"
    OVERPAID = "overpaid"
    PAID_LATE = "paid_late"


class PaymentStatus(StrEnum):
    DETECTED = "detected"
    CONFIRMING = "confirming"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    ORPHANED = "orphaned"


class SettlementStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    # Its invoice's confirmed payment was reorganised away: booked back by a reversal entry.
    REVERSED = "reversed"


INVOICE_TRANSITIONS: Final[Mapping[InvoiceStatus, frozenset[InvoiceStatus]]] = {
    # confirming: some money has been seen, the invoice waits for enough confirmed money.
    InvoiceStatus.PENDING: frozenset(
        {InvoiceStatus.CONFIRMING, InvoiceStatus.EXPIRED, InvoiceStatus.CANCELLED}
    ),
    # confirming → expired only while underpaid at expires_at (guarded in invoice.py): a
    # customer who sent part of the money and left must not keep the invoice open forever.
    InvoiceStatus.CONFIRMING: frozenset({InvoiceStatus.PAID, InvoiceStatus.EXPIRED}),
    # paid → confirming only when a confirmed payment is reorganised away (a reorg deeper than
    # its confirmations, guarded in invoice.py): the settlement is reversed, and the invoice is
    # paid again when the transfer is included again.
    InvoiceStatus.PAID: frozenset({InvoiceStatus.CONFIRMING}),
    # expired → confirming (extended) or paid (accepted) only by the merchant's resolution of an
    # underpaid invoice (guarded in invoice.py: ResolveInvoice).
    InvoiceStatus.EXPIRED: frozenset({InvoiceStatus.CONFIRMING, InvoiceStatus.PAID}),
    InvoiceStatus.CANCELLED: frozenset(),
}

PAYMENT_TRANSITIONS: Final[Mapping[PaymentStatus, frozenset[PaymentStatus]]] = {
    PaymentStatus.DETECTED: frozenset({PaymentStatus.CONFIRMING, PaymentStatus.FAILED}),
    PaymentStatus.CONFIRMING: frozenset(
        {PaymentStatus.CONFIRMED, PaymentStatus.FAILED, PaymentStatus.ORPHANED}
    ),
    # A reorganised transfer goes back to detected when it is included again.
    PaymentStatus.ORPHANED: frozenset({PaymentStatus.DETECTED}),
    # A reorg deeper than the confirmations the invoice required: rare (Tron finalises a block
    # 19 deep) but possible below that; the settlement is reversed (docs/reliability.md).
    PaymentStatus.CONFIRMED: frozenset({PaymentStatus.ORPHANED}),
    PaymentStatus.FAILED: frozenset(),
}

SETTLEMENT_TRANSITIONS: Final[Mapping[SettlementStatus, frozenset[SettlementStatus]]] = {
    SettlementStatus.PENDING: frozenset({SettlementStatus.COMPLETED, SettlementStatus.FAILED}),
    SettlementStatus.COMPLETED: frozenset({SettlementStatus.REVERSED}),
    SettlementStatus.REVERSED: frozenset(),
    SettlementStatus.FAILED: frozenset(),
}

S = TypeVar("S", InvoiceStatus, PaymentStatus, SettlementStatus)


def check_transition(
    table: Mapping[S, frozenset[S]],
    aggregate_type: str,
    aggregate_id: str,
    current: S,
    target: S,
    *,
    reason: str | None = None,
) -> S:
    """``target`` if ``table`` has the edge ``current → target``, else ``InvalidTransition``."""
    allowed = table[current]
    if target not in allowed:
        raise InvalidTransition(
            aggregate_type, aggregate_id, current, target, allowed, reason=reason
        )
    return target
