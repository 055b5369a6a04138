"""The customer's live view of an invoice: a fold of domain events, pure.

``apply_event`` folds one domain event into a private *state* document and renders the public
*view* from it (docs/payment-page.md has the view's fields). Idempotent and order-tolerant: the
state remembers the last applied ``aggregate_version`` of the invoice and of each payment, and an
event at or below it changes nothing. A payment event that arrives before its invoice's
``InvoiceCreated`` (they travel on different partitions) is kept in the state and shows up once
the invoice does; until then there is no view. Settlement events are merchant-only and ignored.
The view never carries a fee field: it is built field by field, never copied from an event.

The live status agent keeps the states in Redis (app/adapters/redis/live_views.py); when Redis
has none, ``view_from_history`` rebuilds a view from the invoice aggregate's own history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from app.domain.events import (
    DomainEvent,
    InvoiceCreated,
    InvoicePaid,
    InvoicePaymentConfirmed,
    InvoicePaymentDetected,
    InvoicePaymentReverted,
    InvoiceProgress,
    InvoiceResolved,
    PaymentConfirmationsUpdated,
    PaymentConfirmed,
    PaymentDetected,
    PaymentFailed,
    PaymentOrphaned,
)
from app.domain.invoice import Invoice, shop_link
from app.domain.money import format_usdt

MAINNET_USDT_CONTRACT: Final = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
FINAL_STATUSES: Final = frozenset({"paid", "expired", "cancelled"})
# Payment statuses still moving on chain: a final invoice's customer waits on them. Not
# `orphaned`: a final invoice was decided without that payment (it reverted it). Its transfer
# usually comes back within a block or two, which the live stream's linger still shows; one a
# reorg dropped for good (its customer paid again) kept the stream open and the page waiting for
# ever (tests/faults/test_reorg.py).
UNSETTLED_PAYMENT_STATUSES: Final = frozenset({"detected", "confirming"})

State = dict[str, Any]
View = dict[str, Any]


@dataclass(frozen=True)
class Applied:
    """What one event did: the new state to store, and the new view to publish (if it changed)."""

    state: State
    view: View | None


def invoice_id_of(event: DomainEvent) -> str | None:
    """The invoice an event is about, or None for events customers never see (settlements)."""
    if event.aggregate_type == "invoice":
        return event.aggregate_id
    if event.aggregate_type == "payment":
        return str(event.data.invoice_id)  # type: ignore[attr-defined]
    return None


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def empty_state(invoice_id: str) -> State:
    return {
        "invoice_id": invoice_id,
        "view_version": 0,
        "invoice_version": 0,
        "invoice": None,
        "progress": None,
        "paid_at": None,
        "payments": {},
    }


def _payment_entry(state: State, payment_id: str) -> dict[str, Any]:
    payments: dict[str, dict[str, Any]] = state["payments"]
    if payment_id not in payments:
        payments[payment_id] = {
            "tx_hash": payment_id.split(":", 1)[0],
            "amount": None,
            "required_confirmations": None,
            "chain_version": 0,
            "chain_status": None,
            "confirmations": 0,
            "invoice_status": None,
        }
    return payments[payment_id]


def _progress(data: InvoiceProgress) -> dict[str, Any]:
    return {
        "status": str(data.status),
        "payment_exception": None
        if data.payment_exception is None
        else str(data.payment_exception),
        "amount_received": format_usdt(data.amount_received),
        "amount_confirmed": format_usdt(data.amount_confirmed),
        "amount_due": format_usdt(data.amount_due),
    }


def _merge_invoice_created(state: State, event: InvoiceCreated) -> None:
    data = event.data
    # Static facts: merged even when the event is late (they never change).
    if state["invoice"] is None:
        state["invoice"] = {
            "amount": format_usdt(data.amount),
            "deposit_address": data.deposit_address,
            "required_confirmations": data.required_confirmations,
            "created_at": _iso(event.occurred_at),
            "expires_at": _iso(data.expires_at),
            "order_id": data.order_id,
            "description": data.description,
            "redirect_url": data.redirect_url,
            "cancel_url": data.cancel_url,
        }
    if event.aggregate_version > state["invoice_version"]:
        state["invoice_version"] = event.aggregate_version
        state["progress"] = {
            "status": "pending",
            "payment_exception": None,
            "amount_received": "0",
            "amount_confirmed": "0",
            "amount_due": format_usdt(data.amount),
        }


_INVOICE_PAYMENT_STATUS: Final = {
    InvoicePaymentDetected: "detected",
    InvoicePaymentConfirmed: "confirmed",
}


def _merge_invoice_progress(state: State, event: DomainEvent) -> bool:
    if event.aggregate_version <= state["invoice_version"]:
        return False
    state["invoice_version"] = event.aggregate_version
    state["progress"] = _progress(event.data)  # type: ignore[arg-type]
    if isinstance(event, InvoicePaid):
        state["paid_at"] = _iso(event.occurred_at)
    if isinstance(event, InvoiceResolved):
        # The merchant's decision about an underpayment, told on the payment page.
        state["resolution"] = event.data.action
        if event.data.expires_at is not None and state["invoice"] is not None:
            state["invoice"]["expires_at"] = _iso(event.data.expires_at)
    if isinstance(event, InvoicePaymentDetected | InvoicePaymentConfirmed | InvoicePaymentReverted):
        entry = _payment_entry(state, event.data.payment_id)
        entry["amount"] = entry["amount"] or format_usdt(event.data.payment_amount)
        if isinstance(event, InvoicePaymentReverted):
            entry["invoice_status"] = event.data.reason
        else:
            entry["invoice_status"] = _INVOICE_PAYMENT_STATUS[type(event)]
    return True


def _merge_payment(state: State, event: DomainEvent) -> bool:
    entry = _payment_entry(state, event.aggregate_id)
    if event.aggregate_version <= entry["chain_version"]:
        return False
    entry["chain_version"] = event.aggregate_version
    data = event.data
    entry["amount"] = format_usdt(data.amount)  # type: ignore[attr-defined]
    match event:
        case PaymentDetected():
            entry.update(
                chain_status="detected",
                confirmations=0,
                tx_hash=event.data.tx_hash,
                required_confirmations=event.data.required_confirmations,
            )
        case PaymentConfirmationsUpdated() | PaymentConfirmed():
            entry.update(
                chain_status="confirmed" if isinstance(event, PaymentConfirmed) else "confirming",
                confirmations=event.data.confirmations,
                required_confirmations=event.data.required_confirmations,
            )
        case PaymentOrphaned():
            entry.update(chain_status="orphaned", confirmations=0)
        case PaymentFailed():
            entry.update(chain_status="failed")
    return True


def merge_event(state: State | None, event: DomainEvent) -> State | None:
    """``state`` with ``event`` folded in (a new dict), or None if the event changes nothing."""
    invoice_id = invoice_id_of(event)
    if invoice_id is None:
        return None
    merged: State = orjson.loads(orjson.dumps(state)) if state else empty_state(invoice_id)
    if isinstance(event, InvoiceCreated):
        before = (merged["invoice"], merged["invoice_version"])
        _merge_invoice_created(merged, event)
        changed = before != (merged["invoice"], merged["invoice_version"])
    elif event.aggregate_type == "invoice":
        changed = _merge_invoice_progress(merged, event)
    else:
        changed = _merge_payment(merged, event)
    return merged if changed else None


def _payment_status(entry: dict[str, Any]) -> str:
    """One status from the payment's own events and what the invoice said about it.

    ``confirmed`` and ``failed`` are final for a payment, so whichever source saw them first
    wins; otherwise the payment's own events (they carry confirmations) are the authority.
    """
    sources = (entry["chain_status"], entry["invoice_status"])
    if "confirmed" in sources:
        return "confirmed"
    if "failed" in sources:
        return "failed"
    return str(entry["chain_status"] or entry["invoice_status"])


def _render_payments(state: State, required: int) -> list[dict[str, Any]]:
    rendered = []
    for payment_id, entry in state["payments"].items():
        status = _payment_status(entry)
        needed = entry["required_confirmations"] or required
        confirmations = entry["confirmations"]
        if status == "confirmed":
            confirmations = max(confirmations, needed)
        elif status == "failed":
            confirmations = 0  # it will never count, whatever its block's depth
        rendered.append(
            {
                "payment_id": payment_id,
                "tx_hash": entry["tx_hash"],
                "amount": entry["amount"],
                "status": status,
                "confirmations": confirmations,
                "required_confirmations": needed,
            }
        )
    return rendered


def _confirmations(payments: list[dict[str, Any]], required: int) -> int:
    """What the customer waits on: the least-confirmed payment still confirming.

    ``required_confirmations`` once every counting payment is confirmed, 0 before any payment.
    """
    waiting = [p["confirmations"] for p in payments if p["status"] in ("detected", "confirming")]
    if waiting:
        return min(waiting)
    if any(p["status"] == "confirmed" for p in payments):
        return required
    return 0


def render_view(state: State | None, *, token_contract: str = MAINNET_USDT_CONTRACT) -> View | None:
    """The public view of ``state``, or None while its invoice has not been seen."""
    if state is None or state["invoice"] is None or state["progress"] is None:
        return None
    invoice, progress = state["invoice"], state["progress"]
    required = invoice["required_confirmations"]
    payments = _render_payments(state, required)
    return {
        "id": state["invoice_id"],
        "status": progress["status"],
        "payment_exception": progress["payment_exception"],
        "total": invoice["amount"],
        "usdt_amount": invoice["amount"],
        "currency": "USDT",
        "amount_received": progress["amount_received"],
        "amount_confirmed": progress["amount_confirmed"],
        "amount_due": progress["amount_due"],
        "deposit_address": invoice["deposit_address"],
        "network": "tron",
        "token_contract": token_contract,
        "required_confirmations": required,
        "confirmations": _confirmations(payments, required),
        "payments": payments,
        "created_at": invoice["created_at"],
        "expires_at": invoice["expires_at"],
        "paid_at": state["paid_at"],
        "description": invoice["description"],
        "order_id": invoice["order_id"],
        # Filled in for this invoice; views folded before these fields existed have none.
        "redirect_url": shop_link(invoice.get("redirect_url"), state["invoice_id"], invoice),
        "cancel_url": shop_link(invoice.get("cancel_url"), state["invoice_id"], invoice),
        "resolution": state.get("resolution"),
        "version": state["view_version"],
    }


def _without_version(view: View | None) -> View | None:
    return None if view is None else {k: v for k, v in view.items() if k != "version"}


def apply_event(
    state: State | None, event: DomainEvent, *, token_contract: str = MAINNET_USDT_CONTRACT
) -> Applied | None:
    """Fold ``event`` into ``state``; None when it changes nothing (a duplicate, a stale version).

    The view's ``version`` goes up by one exactly when the rendered view changes.
    """
    merged = merge_event(state, event)
    if merged is None:
        return None
    before = render_view(state, token_contract=token_contract)
    after = render_view(merged, token_contract=token_contract)
    if after is None or _without_version(after) == _without_version(before):
        return Applied(merged, None)
    merged["view_version"] += 1
    after["version"] = merged["view_version"]
    return Applied(merged, after)


def is_settled(view: View) -> bool:
    """Nothing more is expected: a final status and no payment still moving on chain."""
    return view["status"] in FINAL_STATUSES and not any(
        p["status"] in UNSETTLED_PAYMENT_STATUSES for p in view["payments"]
    )


def view_from_history(invoice: Invoice, *, token_contract: str) -> View | None:
    """The view folded from the invoice's own events, without the payments' confirmation counts
    (those live in payment events; the next live change brings them back). It has no ``version``:
    it counts as version 0, so any live change replaces it."""
    state: State | None = None
    for event in invoice.history:
        state = merge_event(state, event) or state
    view = render_view(state, token_contract=token_contract)
    if view is not None:
        view.pop("version", None)
    return view
