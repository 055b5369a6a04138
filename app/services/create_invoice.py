"""Create an invoice, idempotently: the merchant API's ``POST /api/v1/invoices``.

A new invoice gets a deposit address of its own (allocated before the invoice exists, so nobody
can pay to it before it is watched) and a ``CreateInvoice`` command, which the invoice agent
applies; the caller waits for its answer.

With an ``Idempotency-Key`` the first request's command is kept under the key: a retry with the
same body replays that very command (same invoice id, same address, same answer) instead of
creating a second invoice; the same key with another body is refused. Without a key every request
creates an invoice.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.domain.commands import CreateInvoice
from app.domain.invoice import Invoice
from app.domain.merchant import Merchant
from app.services.errors import IdempotencyKeyReused
from app.services.ports import (
    AddressAllocator,
    IdempotencyKeys,
    IdempotentRequest,
    InvoiceCommandGateway,
)


@dataclass(frozen=True)
class NewInvoice:
    """What the merchant asked for, every field checked (web/requests.py)."""

    amount: int
    expires_in: int
    order_id: str | None = None
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    redirect_url: str | None = None
    cancel_url: str | None = None


# Stands for the deposit address while the command is checked, before one is allocated.
ADDRESS_PLACEHOLDER = "T" + "1" * 33


def new_invoice_id() -> str:
    return f"inv_{secrets.token_hex(12)}"


def request_fingerprint(body: Any) -> str:
    """The same JSON body, however its keys are ordered or spaced, gives the same fingerprint."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class InvoiceCreation:
    def __init__(
        self,
        idempotency: IdempotencyKeys,
        addresses: AddressAllocator,
        invoices: InvoiceCommandGateway,
    ) -> None:
        self._idempotency = idempotency
        self._addresses = addresses
        self._invoices = invoices

    async def create(
        self,
        merchant: Merchant,
        request: NewInvoice,
        *,
        now: datetime,
        idempotency_key: str | None = None,
        fingerprint: str = "",
    ) -> tuple[Invoice, bool]:
        """The invoice, and whether it is a replay of an earlier request with the same key."""
        if idempotency_key is None:
            command = await self._new_command(merchant, request, now, command_id=None)
            return await self._invoices.ask(command), False
        key_id = merchant.merchant_id
        held = await self._idempotency.find(key_id, idempotency_key)
        replayed = held is not None
        if held is None:
            fresh = await self._new_command(
                merchant, request, now, command_id=f"idem:{key_id}:{idempotency_key}"
            )
            held = await self._idempotency.claim(
                key_id,
                idempotency_key,
                IdempotentRequest(fingerprint, fresh.invoice_id, fresh.model_dump(mode="json")),
            )
            replayed = held.invoice_id != fresh.invoice_id  # a concurrent request claimed it
        if held.request_sha256 != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request body; use a new key "
                "for a new invoice",
                param="Idempotency-Key",
            )
        command = CreateInvoice.model_validate(held.command)
        return await self._invoices.ask(command), replayed

    async def _new_command(
        self, merchant: Merchant, request: NewInvoice, now: datetime, *, command_id: str | None
    ) -> CreateInvoice:
        """The command, checked whole before a deposit address is taken for it: an address is
        never used up by a request that is then refused."""
        invoice_id = new_invoice_id()
        draft = CreateInvoice(
            command_id=command_id or f"create:{invoice_id}",
            invoice_id=invoice_id,
            merchant_id=merchant.merchant_id,
            amount=request.amount,
            deposit_address=ADDRESS_PLACEHOLDER,
            fee_percentage=merchant.fee_percentage,
            underpaid_tolerance=merchant.underpaid_tolerance,
            confirmation_override=merchant.confirmation_override,
            created_at=now,
            expires_at=now + timedelta(seconds=request.expires_in),
            order_id=request.order_id,
            description=request.description,
            metadata=request.metadata,
            redirect_url=request.redirect_url,
            cancel_url=request.cancel_url,
        )
        deposit = await self._addresses.allocate(invoice_id)
        return draft.model_copy(update={"deposit_address": deposit.address})
