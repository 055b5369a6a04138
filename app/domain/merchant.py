"""A merchant as the payment rules see it: who they are, their fee, their confirmation policy."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Merchant:
    merchant_id: str
    name: str
    # Platform fee in percent of the gross, fixed on each invoice when it is created.
    fee_percentage: Decimal
    # Replaces the amount-based confirmation policy for every invoice of this merchant.
    confirmation_override: int | None
    # At expiry, an underpayment of at least this percent of the amount (all confirmed) is
    # accepted; fixed on each invoice when it is created. None: never.
    underpaid_tolerance: Decimal | None = None
