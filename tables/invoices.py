"""The invoice agent's state: each invoice aggregate, and the invoices that can still expire."""

from __future__ import annotations

from app.faust_app import app
from app.runtime.topics import INVOICE_COMMANDS

# invoice id → Invoice.to_dict(); partition = the invoice's partition of checkout.invoice-commands
invoices = app.Table(
    "invoices",
    # Raw keys: the same bytes the producers send, so a key hashes to the same partition in
    # the source topic and in the changelog (table reads are routed by that hash).
    key_type=bytes,
    partitions=INVOICE_COMMANDS.partitions,
    help="Invoice aggregates by invoice id (app/domain/invoice.py)",
)

# invoice id → expires_at (ISO 8601) for invoices that are pending or confirming: what the expiry
# timer scans, so it never walks every invoice ever made.
open_invoices = app.Table(
    "open-invoices",
    # Raw keys: the same bytes the producers send, so a key hashes to the same partition in
    # the source topic and in the changelog (table reads are routed by that hash).
    key_type=bytes,
    partitions=INVOICE_COMMANDS.partitions,
    help="Invoices that can still expire, with their expires_at",
)
