"""Refunds and payouts as merchants and admins ask for them (docs/money-out.md, "Flows").

A request is checked here (the address is not ours, the invoice has that much to refund, the
balance covers it) and recorded with its debit in one PostgreSQL transaction, under the
merchant's lock, once per ``Idempotency-Key``. What happens next — signing, broadcast,
confirmations — is the driver's (app/services/money_out_driver.py), on the leader.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from app.domain.errors import (
    AddressNotAllowed,
    AlreadyExists,
    PayoutNotFound,
    RefundNotAllowed,
    RefundNotFound,
    TransferNotChangeable,
)
from app.domain.money_out import (
    ID_PREFIX,
    OutgoingTransfer,
    Stage,
    TransferKind,
    TransferStateError,
    request_transfer,
)
from app.services.ports import MoneyOutStore, StaleTransfer

DEFAULT_PAYOUT_APPROVAL_THRESHOLD: Final = 1_000_000_000  # 1,000 USDT
# Giving up a held refund: what the failure reason (500 characters at most) is made of.
MAX_GIVE_UP_REASON: Final = 300
MAX_OPERATOR_NAME: Final = 100


@dataclass(frozen=True)
class MoneyOutSettings:
    hot_wallet_address: str
    network_fee_payer: Literal["platform", "merchant"] = "platform"
    # USDT charged to the merchant per refund or payout when the merchant pays network fees.
    network_fee_charge: int = 0
    payout_approval_threshold: int = DEFAULT_PAYOUT_APPROVAL_THRESHOLD


def new_transfer_id(kind: TransferKind) -> str:
    return ID_PREFIX[kind] + secrets.token_hex(12)


class MoneyOutRequests:
    def __init__(self, store: MoneyOutStore, settings: MoneyOutSettings) -> None:
        self._store = store
        self._settings = settings

    async def request_refund(
        self,
        merchant_id: str,
        invoice_id: str,
        *,
        amount: int | None,
        address: str | None,
        idempotency_key: str,
        fingerprint: str,
        now: datetime,
    ) -> tuple[OutgoingTransfer, bool]:
        """A refund of an invoice's money: what it settled (debited from the merchant's balance),
        or what it received and never settled — a payment after it expired, or after it was paid
        (``source="received"``: the customer funds it holds, never the merchant's balance).

        ``amount`` defaults to the unsettled money if there is any, else to what the customer
        overpaid; an amount given refunds from the balance on a settled invoice, from the
        unsettled money otherwise. ``address`` defaults to who paid (refused when several
        addresses paid: the merchant must say which)."""
        replay = await self._replay(merchant_id, TransferKind.REFUND, idempotency_key, fingerprint)
        if replay is not None:
            return replay, True
        context = await self._store.refund_context(merchant_id, invoice_id)
        settled = context.settled_gross is not None
        if not settled and context.status not in ("expired", "cancelled"):
            raise RefundNotAllowed(
                f"invoice {invoice_id} is {context.status or 'unknown'} and not settled: an"
                f" underpaid invoice is resolved (POST /api/v1/invoices/{invoice_id}/resolve),"
                " a paid one refunded once settled",
                param="invoice_id",
            )
        source: Literal["balance", "received"] = "balance" if settled else "received"
        if amount is None:
            if context.unsettled > 0:
                amount, source = context.unsettled, "received"
            elif settled:
                assert context.settled_gross is not None
                invoice_amount = context.invoice_amount or context.settled_gross
                amount = context.settled_gross - invoice_amount - context.refunded
            if amount is None or amount <= 0:
                raise RefundNotAllowed(
                    f"invoice {invoice_id} has no overpayment or late payment left to refund;"
                    " give an amount",
                    param="amount",
                )
        if address is None:
            address = context.sole_sender(invoice_id)
        await self.check_destination(address)
        step = request_transfer(
            transfer_id=new_transfer_id(TransferKind.REFUND),
            kind=TransferKind.REFUND,
            merchant_id=merchant_id,
            amount=amount,
            to_address=address,
            at=now,
            invoice_id=invoice_id,
            network_fee_payer=self._settings.network_fee_payer,
            network_fee_charged=self._fee_charge() if source == "balance" else 0,
            source=source,
            causation_id=f"refund:{merchant_id}:{idempotency_key}",
        )
        return await self._store.request(
            step, idempotency_key=idempotency_key, fingerprint=fingerprint, refundable_check=True
        )

    async def refund_received(
        self,
        merchant_id: str,
        invoice_id: str,
        *,
        refund_id: str,
        amount: int,
        address: str,
        at: datetime,
    ) -> OutgoingTransfer:
        """The refund an underpaid invoice's resolution asked for: everything it received, to
        ``address``, from the customer funds it holds (never the merchant's balance). Once per
        invoice, however often the ``InvoiceResolved`` event is delivered."""
        step = request_transfer(
            transfer_id=refund_id,
            kind=TransferKind.REFUND,
            merchant_id=merchant_id,
            amount=amount,
            to_address=address,
            at=at,
            invoice_id=invoice_id,
            network_fee_payer=self._settings.network_fee_payer,
            source="received",
            causation_id=f"resolution:{invoice_id}",
        )
        transfer, _ = await self._store.request(
            step, idempotency_key=f"resolution:{invoice_id}", fingerprint=refund_id
        )
        return transfer

    async def request_payout(
        self,
        merchant_id: str,
        *,
        amount: int,
        address: str,
        threshold: int | None,
        idempotency_key: str,
        fingerprint: str,
        now: datetime,
    ) -> tuple[OutgoingTransfer, bool]:
        """A payout of the merchant's balance to ``address``: approved at once below the
        merchant's threshold (``threshold``, else the platform's), otherwise by an admin."""
        replay = await self._replay(merchant_id, TransferKind.PAYOUT, idempotency_key, fingerprint)
        if replay is not None:
            return replay, True
        await self.check_destination(address)
        limit = self._settings.payout_approval_threshold if threshold is None else threshold
        step = request_transfer(
            transfer_id=new_transfer_id(TransferKind.PAYOUT),
            kind=TransferKind.PAYOUT,
            merchant_id=merchant_id,
            amount=amount,
            to_address=address,
            at=now,
            approval="automatic" if amount < limit else "admin",
            network_fee_payer=self._settings.network_fee_payer,
            network_fee_charged=self._fee_charge(),
            causation_id=f"payout:{merchant_id}:{idempotency_key}",
        )
        return await self._store.request(
            step, idempotency_key=idempotency_key, fingerprint=fingerprint
        )

    async def approve_payout(
        self, payout_id: str, *, admin: str, now: datetime
    ) -> OutgoingTransfer:
        payout = await self._payout(payout_id, None)
        if payout.stage is Stage.APPROVED or payout.approved_by is not None:
            return payout  # approving twice changes nothing
        return await self._change(payout, lambda: payout.approve(admin, now))

    async def cancel_payout(
        self, merchant_id: str, payout_id: str, *, now: datetime
    ) -> OutgoingTransfer:
        payout = await self._payout(payout_id, merchant_id)
        if payout.stage is Stage.CANCELLED:
            return payout
        return await self._change(payout, lambda: payout.cancel(now))

    async def refund(self, merchant_id: str, refund_id: str) -> OutgoingTransfer:
        found = await self._store.get(refund_id, merchant_id=merchant_id)
        if found is None or found.kind is not TransferKind.REFUND:
            raise RefundNotFound(f"no refund {refund_id}", param="refund_id")
        return found

    async def give_up_held_refund(
        self, refund_id: str, *, by: str, reason: str, now: datetime
    ) -> OutgoingTransfer:
        """The operator gives up a refund of received money held because a reorg took the
        payment that funded it, and it never came back (docs/operations.md,
        UnsettledPaymentOrphaned): it fails, its amount returns to the invoice's received money,
        the merchant is told (``RefundFailed`` and its webhook). Any other refund is refused:
        one that is covered is sent, one being signed or sent is followed to its end."""
        if not 0 < len(reason) <= MAX_GIVE_UP_REASON or not 0 < len(by) <= MAX_OPERATOR_NAME:
            raise RefundNotAllowed(
                f"a reason of 1 to {MAX_GIVE_UP_REASON} characters and an operator name of 1 to"
                f" {MAX_OPERATOR_NAME} are needed",
                param="reason",
            )
        refund = await self._store.get(refund_id)
        if refund is None or refund.kind is not TransferKind.REFUND:
            raise RefundNotFound(f"no refund {refund_id}", param="refund_id")
        if refund.stage is Stage.FAILED and refund.failure_reason == _given_up(by, reason):
            return refund  # the same command again changes nothing
        if (
            refund.stage is not Stage.APPROVED
            or refund.source != "received"
            or refund.invoice_id is None
        ):
            raise RefundNotAllowed(
                f"refund {refund_id} is {refund.status} and refunds {refund.source} money: only"
                " a refund of received money waiting to be sent can be given up",
                param="refund_id",
            )
        context = await self._store.refund_context(refund.merchant_id, refund.invoice_id)
        if context.covers_received_refunds():
            raise RefundNotAllowed(
                f"refund {refund_id} is not held: invoice {refund.invoice_id} holds the money"
                " it refunds, so it is being sent",
                param="refund_id",
            )
        try:
            step = refund.fail(_given_up(by, reason), now)
            await self._store.save(refund, step)
        except (TransferStateError, StaleTransfer):
            current = await self._store.get(refund_id)
            raise TransferNotChangeable(
                f"refund {refund_id} is {current.status if current else refund.status} and can no"
                " longer be given up",
                param="refund_id",
            ) from None
        return step.state

    async def payout(self, merchant_id: str | None, payout_id: str) -> OutgoingTransfer:
        return await self._payout(payout_id, merchant_id)

    async def _payout(self, payout_id: str, merchant_id: str | None) -> OutgoingTransfer:
        found = await self._store.get(payout_id, merchant_id=merchant_id)
        if found is None or found.kind is not TransferKind.PAYOUT:
            raise PayoutNotFound(f"no payout {payout_id}", param="payout_id")
        return found

    async def _change(self, payout: OutgoingTransfer, decide: object) -> OutgoingTransfer:
        assert callable(decide)
        try:
            step = decide()
            await self._store.save(payout, step)
        except (TransferStateError, StaleTransfer):
            current = await self._store.get(payout.transfer_id)
            stage = current.stage if current else payout.stage
            raise TransferNotChangeable(
                f"payout {payout.transfer_id} is {stage} and can no longer be changed",
                param="payout_id",
            ) from None
        return step.state

    async def _replay(
        self, merchant_id: str, kind: TransferKind, key: str, fingerprint: str
    ) -> OutgoingTransfer | None:
        """What the key already made (a retry is answered before anything is computed again:
        the defaults may have changed since, e.g. the overpayment was refunded)."""
        held = await self._store.by_key(merchant_id, kind, key)
        if held is None:
            return None
        transfer, held_fingerprint = held
        if held_fingerprint != fingerprint:
            raise AlreadyExists(
                f"Idempotency-Key {key!r} was used for another request", param="Idempotency-Key"
            )
        return transfer

    async def check_destination(self, address: str) -> None:
        """Refused (``AddressNotAllowed``) when ``address`` is one of the platform's own: the hot
        wallet or a deposit address (money sent there would come back as a payment)."""
        if address == self._settings.hot_wallet_address or await self._store.is_ours(address):
            raise AddressNotAllowed(
                f"{address} is one of the platform's own addresses", param="address"
            )

    def _fee_charge(self) -> int:
        return (
            self._settings.network_fee_charge
            if self._settings.network_fee_payer == "merchant"
            else 0
        )


def _given_up(by: str, reason: str) -> str:
    return f"given up by the operator ({by}): {reason}"
