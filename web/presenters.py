"""How merchants see invoices and settlements: amounts as decimal strings, fees included.

(Customers see another view without any fee: app/adapters/redis/live_views.py.)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from app.domain.fees import format_fee_percentage
from app.domain.invoice import Invoice
from app.domain.money import format_usdt
from app.domain.settlement import Settlement


def format_time(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC (``…Z``). PostgreSQL answers in its session's time zone: converted here."""
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def invoice_for_merchant(invoice: Invoice) -> dict[str, Any]:
    return {
        "id": invoice.invoice_id,
        "object": "invoice",
        "merchant_id": invoice.merchant_id,
        "status": str(invoice.status),
        "payment_exception": (
            None if invoice.payment_exception is None else str(invoice.payment_exception)
        ),
        "amount": format_usdt(invoice.amount),
        "currency": invoice.currency,
        "amount_received": format_usdt(invoice.amount_received),
        "amount_confirmed": format_usdt(invoice.amount_confirmed),
        "amount_due": format_usdt(invoice.amount_due),
        "deposit_address": invoice.deposit_address,
        "required_confirmations": invoice.required_confirmations,
        "fee_percentage": format_fee_percentage(invoice.fee_percentage),
        "created_at": format_time(invoice.created_at),
        "expires_at": format_time(invoice.expires_at),
        "paid_at": format_time(invoice.paid_at),
        "expired_at": format_time(invoice.expired_at),
        "cancelled_at": format_time(invoice.cancelled_at),
        "cancellation_reason": invoice.cancellation_reason,
        "order_id": invoice.order_id,
        "description": invoice.description,
        "metadata": invoice.metadata,
        "redirect_url": invoice.redirect_url,
        "cancel_url": invoice.cancel_url,
        "resolution": invoice.resolution,
        "underpaid_tolerance": (
            None
            if invoice.underpaid_tolerance is None
            else format_fee_percentage(invoice.underpaid_tolerance)
        ),
        "payments": [
            {
                "payment_id": payment_id,
                "amount": format_usdt(payment.amount),
                "confirmed": payment.confirmed,
                "late": payment.late,
            }
            for payment_id, payment in invoice.payments.items()
        ],
        "payment_url": f"/pay/{invoice.invoice_id}",
        "version": invoice.version,
    }


def settlement_for_merchant(settlement: Settlement) -> dict[str, Any]:
    return {
        "id": settlement.settlement_id,
        "object": "settlement",
        "invoice_id": settlement.invoice_id,
        "gross_amount": format_usdt(settlement.gross_amount),
        "platform_fee_amount": format_usdt(settlement.platform_fee_amount),
        "platform_fee_percentage": format_fee_percentage(settlement.platform_fee_percentage),
        "net_amount": format_usdt(settlement.net_amount),
        "currency": "USDT",
        "status": str(settlement.status),
        "created_at": format_time(settlement.created_at),
        "completed_at": format_time(settlement.completed_at),
    }


def settlement_row_for_merchant(row: dict[str, Any]) -> dict[str, Any]:
    """The same shape from the PostgreSQL settlements read model."""
    return {
        "id": row["settlement_id"],
        "object": "settlement",
        "invoice_id": row["invoice_id"],
        "gross_amount": format_usdt(int(row["gross_amount"])),
        "platform_fee_amount": format_usdt(int(row["platform_fee_amount"])),
        "platform_fee_percentage": format_fee_percentage(Decimal(row["platform_fee_percentage"])),
        "net_amount": format_usdt(int(row["net_amount"])),
        "currency": "USDT",
        "status": row["status"],
        "created_at": format_time(row["created_at"]),
        "completed_at": format_time(row["completed_at"]),
    }


def invoice_summary_for_merchant(row: Mapping[str, Any]) -> dict[str, Any]:
    """An invoice from the ``invoice_summaries`` read model (app/adapters/postgres/projections.py),
    for lists.

    The invoice's shape without ``payments`` (GET /api/v1/invoices/{id} has them); ``version``
    is the event the row reflects, so a list item older than the invoice shows it.
    """
    fee_percentage = row["fee_percentage"]
    return {
        "id": row["invoice_id"],
        "object": "invoice",
        "merchant_id": row["merchant_id"],
        "status": row["status"],
        "payment_exception": row["payment_exception"],
        "amount": format_usdt(int(row["amount"])),
        "currency": "USDT",
        "amount_received": format_usdt(int(row["amount_received"])),
        "amount_confirmed": format_usdt(int(row["amount_confirmed"])),
        "amount_due": format_usdt(int(row["amount_due"])),
        "deposit_address": row["deposit_address"],
        "required_confirmations": row["required_confirmations"],
        "fee_percentage": (
            None if fee_percentage is None else format_fee_percentage(Decimal(fee_percentage))
        ),
        "created_at": format_time(row["created_at"]),
        "expires_at": format_time(row["expires_at"]),
        "paid_at": format_time(row["paid_at"]),
        "expired_at": format_time(row["expired_at"]),
        "cancelled_at": format_time(row["cancelled_at"]),
        "cancellation_reason": row["cancellation_reason"],
        "order_id": row["order_id"],
        "description": row["description"],
        "metadata": row["metadata"] or {},
        "redirect_url": row.get("redirect_url"),
        "cancel_url": row.get("cancel_url"),
        "resolution": row.get("resolution"),
        "underpaid_tolerance": (
            None
            if row.get("underpaid_tolerance") is None
            else format_fee_percentage(Decimal(row["underpaid_tolerance"]))
        ),
        "payment_url": f"/pay/{row['invoice_id']}",
        "version": row["aggregate_version"],
        "updated_at": format_time(row["updated_at"]),
        "tx_hashes": list(row.get("tx_hashes") or ()),
        "confirmations": row.get("confirmations") or 0,
    }


# Block explorers by Tron network, for links to transactions (the simulator has none).
EXPLORERS: Final = {
    "mainnet": "https://tronscan.org/#",
    "shasta": "https://shasta.tronscan.org/#",
    "nile": "https://nile.tronscan.org/#",
}


def explorer_base(network: str) -> str | None:
    """The explorer of ``network``; ``{base}/transaction/{tx_hash}`` shows a transaction."""
    return EXPLORERS.get(network)
