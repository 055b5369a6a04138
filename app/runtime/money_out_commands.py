"""``checkout money-out give-up-refund REFUND_ID --reason TEXT [--by NAME] [--json]``.

A refund of the money an invoice received and never settled is held while a reorg has taken the
payment that funded it (app/services/money_out_driver.py): it is sent once the payment is
confirmed again. When it will not come back (the customer's transfer was dropped for good), the
operator gives the refund up: it fails with the reason given, its amount returns to the
invoice's received money, the merchant is told (``RefundFailed`` and its webhook, published by
the leader's money-out driver from the outbox). Any other refund is refused: one covered by the
invoice's money is being sent, one being signed or broadcast is followed to its end. Audited.
It writes PostgreSQL only: no worker is needed (docs/operations.md, UnsettledPaymentOrphaned).
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Final

import click

from app.adapters.postgres.audit_log import PostgresAuditLog
from app.adapters.postgres.money_out import PostgresMoneyOut
from app.adapters.postgres.unmatched import UnmatchedInputError, check_text
from app.domain.money import format_usdt
from app.domain.money_out import OutgoingTransfer
from app.runtime.cli_support import audited, database, json_option, print_json, refuse
from app.services.money_out import (
    MAX_GIVE_UP_REASON,
    MAX_OPERATOR_NAME,
    MoneyOutRequests,
    MoneyOutSettings,
)
from app.settings import Settings

GIVE_UP: Final = "money-out give-up-refund"
_REFUND_ID: Final = re.compile(r"rf_[0-9a-f]{24}")


def money_out_group(settings: Settings) -> click.Group:
    @click.group(name="money-out")
    def money_out() -> None:
        """Refunds and payouts, for the operator (docs/money-out.md)."""

    @money_out.command(name="give-up-refund")
    @click.argument("refund_id")
    @click.option(
        "--reason",
        required=True,
        help=f"Why it will not be sent, for the merchant (≤ {MAX_GIVE_UP_REASON} chars).",
    )
    @click.option("--by", "by", default="operator", show_default=True, help="Who decided.")
    @json_option
    def give_up(refund_id: str, reason: str, by: str, as_json: bool) -> None:
        """Fail a refund of received money held since a reorg took its payment."""
        if not _REFUND_ID.fullmatch(refund_id):
            refuse(GIVE_UP, f"{refund_id[:40]!r} is not a refund id (rf_ and 24 hex digits)")
        try:
            reason = check_text(reason, field="--reason", limit=MAX_GIVE_UP_REASON)
            by = check_text(by, field="--by", limit=MAX_OPERATOR_NAME)
        except UnmatchedInputError as exc:
            refuse(GIVE_UP, exc)
        asyncio.run(_give_up(settings, refund_id, reason, by, as_json))

    return money_out


async def _give_up(settings: Settings, refund_id: str, reason: str, by: str, as_json: bool) -> None:
    async with database(settings, maxsize=2) as pool:
        requests = MoneyOutRequests(
            PostgresMoneyOut(pool, origin=settings.app_id),
            MoneyOutSettings(hot_wallet_address=settings.chain.hot_wallet_address or ""),
        )
        refund: OutgoingTransfer = await audited(
            PostgresAuditLog(pool),
            GIVE_UP,
            None,
            lambda failed: failed.transfer_id,
            lambda: requests.give_up_held_refund(
                refund_id, by=by, reason=reason, now=datetime.now(UTC)
            ),
            lambda failed: {
                "invoice_id": failed.invoice_id,
                "amount": format_usdt(failed.amount),
                "reason": failed.failure_reason,
            },
        )
    answer = {
        "refund_id": refund.transfer_id,
        "invoice_id": refund.invoice_id,
        "merchant_id": refund.merchant_id,
        "amount": format_usdt(refund.amount),
        "status": refund.status,
        "reason": refund.failure_reason,
    }
    if as_json:
        print_json(answer)
        return
    print(
        f"refund {refund.transfer_id} of invoice {refund.invoice_id} ({answer['amount']} USDT)"
        f" {refund.status}: {refund.failure_reason}"
    )
