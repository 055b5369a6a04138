"""The platform's double-entry journal: accounts, and movements that always balance.

docs/money-out.md, "The ledger". A movement (a ledger transaction) is a set of entries that sum to
zero per currency; USDT (micro-USDT) and TRX (sun) are never summed together. Signs as the
settlement entries have always had them: a credit (what the platform owes or earned) is positive,
a debit (what it holds, or spent) is negative. So ``merchant:<id>`` is the merchant's available
balance as a positive number, and the USDT held on chain shows as negative ``customer_funds`` and
``hot_wallet``. PostgreSQL checks the balance again at commit (migrations/0016_money_out.sql).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Final, Literal

Currency = Literal["USDT", "TRX"]

CUSTOMER_FUNDS: Final = "customer_funds"
PLATFORM_FEES: Final = "platform_fees"
HOT_WALLET: Final = "hot_wallet"
NETWORK_COSTS: Final = "network_costs"


def merchant_account(merchant_id: str) -> str:
    """The merchant's available balance (credit: what the platform owes them)."""
    return f"merchant:{merchant_id}"


def in_flight_account(merchant_id: str) -> str:
    """The merchant's refunds and payouts debited from the balance, not yet confirmed on chain."""
    return f"merchant:{merchant_id}:in_flight"


def refunds_payable_account(merchant_id: str) -> str:
    """Refunds of money a merchant's invoices received but never settled (an underpaid invoice
    resolved by a refund): owed to the customers, not the merchant's balance."""
    return f"refunds_payable:{merchant_id}"


def recharged_account(merchant_id: str) -> str:
    """Network fees the merchant was charged (NETWORK_FEE_PAYER=merchant), in USDT."""
    return f"network_costs_recharged:{merchant_id}"


class UnbalancedMovement(ValueError):
    """A movement whose entries do not sum to zero in some currency: a bug, never booked."""


@dataclass(frozen=True)
class Entry:
    account: str
    amount: int  # credit positive, debit negative
    currency: Currency = "USDT"


@dataclass(frozen=True)
class Movement:
    """One ledger transaction: booked once per (kind, reference), entries summing to zero."""

    kind: str
    reference: str
    entries: tuple[Entry, ...]

    def __post_init__(self) -> None:
        totals: Counter[str] = Counter()
        for entry in self.entries:
            totals[entry.currency] += entry.amount
        off = {currency: total for currency, total in totals.items() if total}
        if off:
            raise UnbalancedMovement(f"{self.kind} {self.reference} does not balance: {off}")


def moves(kind: str, reference: str, *moves: tuple[str, str, int, Currency]) -> Movement:
    """A movement made of moves ``(source, target, amount, currency)``: ``source`` is debited
    (−amount) and ``target`` credited (+amount). Zero amounts are left out.

    With credit-positive signs: a payout requested is ``(merchant, in_flight)``: the merchant's
    balance goes down, what is in flight goes up; once confirmed, ``(in_flight, hot_wallet)``:
    the hot wallet (a debit-side asset) holds that much less.
    """
    entries: list[Entry] = []
    for source, target, amount, currency in moves:
        if amount < 0:
            raise UnbalancedMovement(f"{kind} {reference}: a move of {amount} {currency}")
        if amount:
            entries.append(Entry(source, -amount, currency))
            entries.append(Entry(target, amount, currency))
    return Movement(kind, reference, tuple(entries))
