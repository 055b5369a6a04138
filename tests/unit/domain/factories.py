"""Builders for domain commands and aggregates in known states, for the unit tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from app.domain.commands import (
    ApplyPaymentConfirmed,
    ApplyPaymentDetected,
    ApplyPaymentFailed,
    ApplyPaymentOrphaned,
    CancelInvoice,
    CompleteSettlement,
    CreateInvoice,
    CreateSettlement,
    DetectPayment,
    ExpireInvoice,
    FailPayment,
    FailSettlement,
    OrphanPayment,
    ReverseSettlement,
    UpdateConfirmations,
    settlement_id_for,
)
from app.domain.deposit import DepositRegistration
from app.domain.invoice import Invoice, handle_invoice
from app.domain.money import parse_usdt
from app.domain.observations import ChainHeadAdvanced, TransferObserved
from app.domain.payment import Payment, handle_payment
from app.domain.settlement import Settlement, handle_settlement

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
EXPIRES_AT = T0 + timedelta(minutes=15)
AFTER_EXPIRY = EXPIRES_AT + timedelta(seconds=1)
INVOICE_ID = "inv_1"
MERCHANT_ID = "mer_1"
DEPOSIT_ADDRESS = "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8"
CUSTOMER_ADDRESS = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
USDT_CONTRACT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
BLOCK = 1_000
SETTLEMENT_ID = settlement_id_for(INVOICE_ID)

_ids = itertools.count(1)


def fresh_id(prefix: str = "cmd") -> str:
    return f"{prefix}-{next(_ids)}"


def usdt(text: str) -> int:
    return parse_usdt(text)


def tx_hash(n: int) -> str:
    return f"{n:064x}"


def block_id(n: int) -> str:
    return f"{n + 0xB0:064x}"


def create_invoice(**overrides: Any) -> CreateInvoice:
    fields: dict[str, Any] = {
        "command_id": fresh_id("create"),
        "invoice_id": INVOICE_ID,
        "merchant_id": MERCHANT_ID,
        "amount": usdt("9.99"),
        "deposit_address": DEPOSIT_ADDRESS,
        "fee_percentage": Decimal("1"),
        "created_at": T0,
        "expires_at": EXPIRES_AT,
        "order_id": "order-42",
        "description": "a mug",
        "metadata": {"sku": "MUG-1"},
    }
    fields.update(overrides)
    return CreateInvoice(**fields)


def new_invoice(**overrides: Any) -> Invoice:
    invoice, _ = handle_invoice(None, create_invoice(**overrides))
    return invoice


def detected(payment_id: str, amount: int, **overrides: Any) -> ApplyPaymentDetected:
    fields: dict[str, Any] = {
        "command_id": fresh_id("detected"),
        "invoice_id": INVOICE_ID,
        "payment_id": payment_id,
        "amount": amount,
        "detected_at": T0 + timedelta(minutes=1),
    }
    fields.update(overrides)
    return ApplyPaymentDetected(**fields)


def confirmed(payment_id: str, amount: int, **overrides: Any) -> ApplyPaymentConfirmed:
    fields: dict[str, Any] = {
        "command_id": fresh_id("confirmed"),
        "invoice_id": INVOICE_ID,
        "payment_id": payment_id,
        "amount": amount,
        "confirmed_at": T0 + timedelta(minutes=2),
    }
    fields.update(overrides)
    return ApplyPaymentConfirmed(**fields)


def orphaned(payment_id: str) -> ApplyPaymentOrphaned:
    return ApplyPaymentOrphaned(
        command_id=fresh_id("orphaned"),
        invoice_id=INVOICE_ID,
        payment_id=payment_id,
        orphaned_at=T0 + timedelta(minutes=3),
    )


def failed(payment_id: str) -> ApplyPaymentFailed:
    return ApplyPaymentFailed(
        command_id=fresh_id("failed"),
        invoice_id=INVOICE_ID,
        payment_id=payment_id,
        failed_at=T0 + timedelta(minutes=3),
        reason="reverted",
    )


def cancel() -> CancelInvoice:
    return CancelInvoice(
        command_id=fresh_id("cancel"),
        invoice_id=INVOICE_ID,
        cancelled_at=T0 + timedelta(minutes=1),
        reason="customer left",
    )


def expire(at: datetime = AFTER_EXPIRY) -> ExpireInvoice:
    return ExpireInvoice(command_id=fresh_id("expire"), invoice_id=INVOICE_ID, expired_at=at)


def run_invoice(invoice: Invoice, *commands: Any) -> Invoice:
    for command in commands:
        invoice, _ = handle_invoice(invoice, command)
    return invoice


# --- payments -----------------------------------------------------------------------------------


def payment_id_of(n: int, log_index: int = 0) -> str:
    return f"{tx_hash(n)}:{log_index}"


def detect(**overrides: Any) -> DetectPayment:
    fields: dict[str, Any] = {
        "command_id": fresh_id("detect"),
        "invoice_id": INVOICE_ID,
        "merchant_id": MERCHANT_ID,
        "tx_hash": tx_hash(1),
        "log_index": 0,
        "deposit_address": DEPOSIT_ADDRESS,
        "from_address": CUSTOMER_ADDRESS,
        "amount": usdt("9.99"),
        "block_number": BLOCK,
        "block_id": block_id(BLOCK),
        "block_timestamp": T0 + timedelta(minutes=1),
        "required_confirmations": 12,
    }
    fields.update(overrides)
    return DetectPayment(**fields)


def head(number: int, payment_id: str | None = None) -> UpdateConfirmations:
    return UpdateConfirmations(
        command_id=fresh_id("head"),
        payment_id=payment_id or payment_id_of(1),
        head_number=number,
        observed_at=T0 + timedelta(minutes=2),
    )


def orphan(block: str | None = None, payment_id: str | None = None) -> OrphanPayment:
    return OrphanPayment(
        command_id=fresh_id("orphan"),
        payment_id=payment_id or payment_id_of(1),
        block_id=block or block_id(BLOCK),
        orphaned_at=T0 + timedelta(minutes=3),
    )


def fail_payment(payment_id: str | None = None) -> FailPayment:
    return FailPayment(
        command_id=fresh_id("fail"),
        payment_id=payment_id or payment_id_of(1),
        failed_at=T0 + timedelta(minutes=3),
        reason="transaction reverted",
    )


def new_payment(**overrides: Any) -> Payment:
    payment, _ = handle_payment(None, detect(**overrides))
    return payment


def run_payment(payment: Payment, *commands: Any) -> Payment:
    for command in commands:
        payment, _ = handle_payment(payment, command)
    return payment


# --- settlements --------------------------------------------------------------------------------


def create_settlement(**overrides: Any) -> CreateSettlement:
    fields: dict[str, Any] = {
        "command_id": fresh_id("settle"),
        "invoice_id": INVOICE_ID,
        "merchant_id": MERCHANT_ID,
        "gross_amount": usdt("9.99"),
        "fee_percentage": Decimal("1"),
        "created_at": T0 + timedelta(minutes=2),
    }
    fields.update(overrides)
    return CreateSettlement(**fields)


def new_settlement(**overrides: Any) -> Settlement:
    settlement, _ = handle_settlement(None, create_settlement(**overrides))
    return settlement


def complete() -> CompleteSettlement:
    return CompleteSettlement(
        command_id=fresh_id("complete"),
        settlement_id=SETTLEMENT_ID,
        completed_at=T0 + timedelta(minutes=5),
        reference="payout-77",
    )


def reverse(settlement_round: int = 1) -> ReverseSettlement:
    return ReverseSettlement(
        command_id=fresh_id("reverse"),
        invoice_id=INVOICE_ID,
        settlement_round=settlement_round,
        payment_id=f"{tx_hash(1)}:0",
        reversed_at=T0 + timedelta(minutes=9),
        reference="ledger:90",
    )


def fail() -> FailSettlement:
    return FailSettlement(
        command_id=fresh_id("fail"),
        settlement_id=SETTLEMENT_ID,
        failed_at=T0 + timedelta(minutes=5),
        reason="merchant wallet rejected the payout",
    )


# --- the deposit account ----------------------------------------------------------------------

MONITOR_UNTIL = EXPIRES_AT + timedelta(days=7)


def deposit_registration(
    invoice_id: str = INVOICE_ID, *, amount: str = "9.99", required_confirmations: int = 2
) -> DepositRegistration:
    return DepositRegistration(
        deposit_address=DEPOSIT_ADDRESS,
        invoice_id=invoice_id,
        merchant_id=MERCHANT_ID,
        amount=usdt(amount),
        required_confirmations=required_confirmations,
        expires_at=EXPIRES_AT,
        monitor_until=MONITOR_UNTIL,
    )


def transfer_observed(
    n: int = 1, amount: str = "9.99", block: int = BLOCK, **extra: Any
) -> TransferObserved:
    """A transfer to the deposit address in ``block``; ``amount="0"`` is address-poisoning spam."""
    fields: dict[str, Any] = {
        "tx_hash": tx_hash(n),
        "log_index": 0,
        "block_number": block,
        "block_id": block_id(block),
        "block_timestamp": T0 + timedelta(minutes=1),
        "contract_address": USDT_CONTRACT,
        "from_address": CUSTOMER_ADDRESS,
        "to_address": DEPOSIT_ADDRESS,
        "amount": 0 if amount == "0" else usdt(amount),
        **extra,
    }
    return TransferObserved.model_validate(fields)


def chain_head(number: int) -> ChainHeadAdvanced:
    return ChainHeadAdvanced(
        head_number=number,
        head_block_id=block_id(number),
        solidified_number=max(0, number - 19),
        observed_at=T0 + timedelta(minutes=2),
    )
