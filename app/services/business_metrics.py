"""The business figures the platform is judged by, as Prometheus metrics (monitoring/alerts.yml).

Moved by the settlement use case (app/services/settlement.py), which settles every paid invoice
and sees every domain event of its partitions on the way:

- ``checkout_settlements_completed_total``: settlements booked and completed. An ``InvoicePaid``
  the settlement agent cannot settle goes to the dead-letter topic
  (``checkout_dead_letters_total{agent="settlement_agent"}``), so the **settlement success rate**
  is completed / (completed + those dead letters); a dependency that is down delays a settlement
  (``checkout_transient_retries_total``), it does not fail it.
- ``checkout_settled_usdt_total``, ``checkout_platform_fees_usdt_total``: the gross settled and
  the platform's fees, in USDT.
- ``checkout_settlement_fee_checks_total{result="match"|"mismatch"}``: **fee collection
  accuracy**. Each completed settlement is checked against the invoice's ``InvoicePaid``: the
  same gross, the same fee percentage, the fee recomputed here in decimal arithmetic (half-up to
  the cent, at most the gross; not by app/domain/fees.py, which it checks) and net = gross − fee.
  A mismatch is also logged with the settlement id.
- ``checkout_payment_confirmation_seconds``: **payment confirmation time**, from the block of an
  invoice's first payment (``InvoicePaymentDetected``, stamped with the block's time) to the
  invoice paid (``InvoicePaid``, stamped when the confirming chain head was observed): what a
  customer waits for once the money is on chain, confirmations included. Measured only while
  nobody but the chain decides: an invoice expired, cancelled or resolved by its merchant in
  between is not measured, nor a payment that arrived late. Both events are keyed by the
  invoice id, so one worker sees both; an invoice whose partition moved to another worker in
  between is not measured either.

Label values are few and fixed: never an invoice, merchant or address id. A metric decides
nothing and never fails the money path: every update here is guarded.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Final

from prometheus_client import Counter, Histogram

from app.domain.events import (
    DomainEvent,
    InvoiceCancelled,
    InvoiceExpired,
    InvoicePaid,
    InvoicePaymentDetected,
    InvoiceResolved,
)
from app.domain.fees import CENT
from app.domain.money import MICRO_PER_USDT
from app.domain.settlement import Settlement

logger = logging.getLogger(__name__)

SETTLEMENTS_COMPLETED = Counter(
    "checkout_settlements_completed",
    "Settlements booked in the ledger and completed (failures: the settlement agent's DLQ)",
)
SETTLED_USDT = Counter(
    "checkout_settled_usdt", "Gross USDT of completed settlements (what customers paid)"
)
PLATFORM_FEES_USDT = Counter(
    "checkout_platform_fees_usdt", "Platform fees of completed settlements, in USDT"
)
FEE_CHECKS = Counter(
    "checkout_settlement_fee_checks",
    "Completed settlements whose gross, fee and net match the invoice's InvoicePaid, or not",
    ["result"],
)
PAYMENT_CONFIRMATION_SECONDS = Histogram(
    "checkout_payment_confirmation_seconds",
    "From the block of an invoice's first payment to the invoice paid (confirmations included)",
    buckets=(5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600, 900, 1800, 3600),
)
# Both results exist from the start, so that the first mismatch is an increase.
for _result in ("match", "mismatch"):
    FEE_CHECKS.labels(result=_result)

# Invoices with a payment seen and not yet paid, per worker: about a minute's worth of payments in
# normal operation; the oldest are forgotten (not measured) beyond this.
OPEN_INVOICES_REMEMBERED: Final = 50_000


def expected_fee(gross_amount: int, fee_percentage: Decimal) -> int:
    """The fee in micro-USDT: the percentage of the gross, half-up to the cent, at most the gross.

    Decimal arithmetic, independent of app/domain/fees.py's integer formula that it checks."""
    with localcontext() as context:
        context.prec = 60
        cents = (Decimal(gross_amount) * fee_percentage / 100 / CENT).quantize(
            Decimal(1), rounding=ROUND_HALF_UP
        )
    return min(int(cents) * CENT, gross_amount)


def fee_is_right(settlement: Settlement, gross_amount: int, fee_percentage: Decimal) -> bool:
    """Whether ``settlement`` splits what its InvoicePaid asked: this gross at this percentage."""
    fee = expected_fee(gross_amount, fee_percentage)
    return (
        settlement.gross_amount == gross_amount
        and settlement.platform_fee_percentage == fee_percentage
        and settlement.platform_fee_amount == fee
        and settlement.net_amount == gross_amount - fee
    )


def settlement_completed(
    settlement: Settlement, gross_amount: int, fee_percentage: Decimal
) -> None:
    """Count a settlement this worker has just completed, and check its fee."""
    try:
        SETTLEMENTS_COMPLETED.inc()
        SETTLED_USDT.inc(settlement.gross_amount / MICRO_PER_USDT)
        PLATFORM_FEES_USDT.inc(settlement.platform_fee_amount / MICRO_PER_USDT)
        if fee_is_right(settlement, gross_amount, fee_percentage):
            FEE_CHECKS.labels(result="match").inc()
            return
        FEE_CHECKS.labels(result="mismatch").inc()
        logger.error(
            "settlement %s of invoice %s does not match its InvoicePaid: gross %d fee %d net %d "
            "at %s %%, expected gross %d fee %d at %s %%",
            settlement.settlement_id,
            settlement.invoice_id,
            settlement.gross_amount,
            settlement.platform_fee_amount,
            settlement.net_amount,
            settlement.platform_fee_percentage,
            gross_amount,
            expected_fee(gross_amount, fee_percentage),
            fee_percentage,
        )
    except Exception:  # a metric must never fail a settlement
        logger.exception("settlement metrics of %s not recorded", settlement.settlement_id)


class PaymentConfirmationClock:
    """Times each invoice from its first payment's block to ``InvoicePaid`` (see the module)."""

    def __init__(self, capacity: int = OPEN_INVOICES_REMEMBERED) -> None:
        self._capacity = capacity
        self._first_payment_at: OrderedDict[str, datetime] = OrderedDict()

    def __len__(self) -> int:
        return len(self._first_payment_at)

    def observe(self, event: DomainEvent) -> None:
        try:
            self._observe(event)
        except Exception:  # a metric must never fail the agent that reads the event
            logger.exception("payment confirmation time: event %s not observed", event.event_id)

    def _observe(self, event: DomainEvent) -> None:
        invoice_id = event.aggregate_id
        match event:
            case InvoicePaymentDetected():
                if event.data.late:
                    return  # the invoice had expired or was cancelled: nobody waits for it
                if invoice_id not in self._first_payment_at:
                    self._first_payment_at[invoice_id] = event.occurred_at
                    if len(self._first_payment_at) > self._capacity:
                        self._first_payment_at.popitem(last=False)
            case InvoicePaid():
                first = self._first_payment_at.pop(invoice_id, None)
                if first is not None:
                    waited = (event.occurred_at - first).total_seconds()
                    PAYMENT_CONFIRMATION_SECONDS.observe(max(0.0, waited))
            case InvoiceExpired() | InvoiceCancelled():
                self._first_payment_at.pop(invoice_id, None)
            case InvoiceResolved():
                automatic = event.data.resolved_by == "tolerance" and event.data.action == "accept"
                if not automatic:  # a person decided: the wait is theirs, not the chain's
                    self._first_payment_at.pop(invoice_id, None)
            case _:
                pass
