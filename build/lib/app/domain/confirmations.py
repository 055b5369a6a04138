"""How many blocks must follow a payment before it counts, by the invoice's amount.

Tron produces a block every 3 s and solidifies a block 19 blocks deep, so: under 100 USDT one
block (~3 s), under 10,000 USDT twelve (~36 s), otherwise nineteen (solidified). A merchant
override replaces the default, from 1 (the block the transfer is in) to ``MAX_CONFIRMATIONS``
(100 blocks, five minutes: beyond solidification more blocks add waiting, not safety).
The number is fixed on the invoice when it is created and copied onto each of its payments.
"""

from __future__ import annotations

from typing import Final

from app.domain.errors import InvalidConfirmations
from app.domain.money import MICRO_PER_USDT, check_amount

SMALL_PAYMENT_BELOW: Final = 100 * MICRO_PER_USDT
MEDIUM_PAYMENT_BELOW: Final = 10_000 * MICRO_PER_USDT
SMALL_PAYMENT_CONFIRMATIONS: Final = 1
MEDIUM_PAYMENT_CONFIRMATIONS: Final = 12
LARGE_PAYMENT_CONFIRMATIONS: Final = 19
MIN_CONFIRMATIONS: Final = 1
MAX_CONFIRMATIONS: Final = 100


def required_confirmations(amount: int, override: int | None = None) -> int:
    """Blocks needed for an invoice of ``amount`` micro-USDT; ``override`` replaces the default."""
    check_amount(amount)
    if override is not None:
        return check_confirmation_override(override)
    if amount < SMALL_PAYMENT_BELOW:
        return SMALL_PAYMENT_CONFIRMATIONS
    if amount < MEDIUM_PAYMENT_BELOW:
        return MEDIUM_PAYMENT_CONFIRMATIONS
    return LARGE_PAYMENT_CONFIRMATIONS


def check_confirmation_override(override: int, *, field: str = "required_confirmations") -> int:
    """``override`` itself when it is a whole number of blocks in the allowed range."""
    if isinstance(override, bool) or not isinstance(override, int):
        raise InvalidConfirmations(f"{field} must be a whole number of blocks", param=field)
    if not MIN_CONFIRMATIONS <= override <= MAX_CONFIRMATIONS:
        raise InvalidConfirmations(
            f"{field} must be between {MIN_CONFIRMATIONS} and {MAX_CONFIRMATIONS}", param=field
        )
    return override


def confirmations_at(head_number: int, block_number: int) -> int:
    """Confirmations of a transaction in ``block_number`` when the chain head is ``head_number``.

    The block holding the transaction is its first confirmation (head − block + 1); a head below
    the block (a stale head read after a newer transfer) counts as none.
    """
    return max(0, head_number - block_number + 1)
