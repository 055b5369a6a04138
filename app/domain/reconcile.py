"""The ledger against the chain: what the books say each address holds, and what it holds.

docs/money-out.md, "The ledger" and "Reconcile". For the hot wallet, the ledger's ``hot_wallet``
account in USDT and TRX (held: the negated balance of a debit-side account). For a deposit
address:

- USDT in the ledger: what was settled for its invoice (booked ``customer_funds``) less what
  sweeps took from it (booked when solidified);
- USDT outside the ledger: received at the address but not settled — a late payment, an
  underpayment, a payment still confirming — which the platform knows of (the invoice's
  ``amount_received``) but has not booked; it is expected on chain, and shown apart;
- TRX: the ledger's ``deposit:<address>`` account (top-ups less what sweeps burned).

The difference is chain − (ledger + outside the ledger). A transfer still in flight (broadcast,
not yet booked at its solidified block) may explain a difference: each one widens the range the
difference of its addresses may take, by its amount and the most its fee can burn; such a line is
``in_flight``, listed with its transfers, and does not fail the reconciliation. Anything else not
zero is a ``difference``: an operator must find out why (a payment the watcher missed, money moved
by a key outside the platform, a booking missing).

The owner's funding of the hot wallet comes from outside the platform and is recorded by hand
(``checkout ledger record-funding``): ``owner_funding`` (a credit: what the platform owes its
owner) → ``hot_wallet``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal

from app.domain.ledger import HOT_WALLET, Currency, Movement, moves

OWNER_FUNDING: Final = "owner_funding"

Role = Literal["hot_wallet", "deposit"]
Status = Literal["ok", "in_flight", "difference"]


def owner_funding(usdt: int, trx_sun: int, reference: str) -> Movement:
    """The owner sent the hot wallet ``usdt`` micro-USDT and ``trx_sun`` sun from outside."""
    if usdt < 0 or trx_sun < 0 or usdt + trx_sun == 0:
        raise ValueError("a funding moves a positive amount of USDT or TRX, neither negative")
    if not 1 <= len(reference) <= 200:
        raise ValueError("a funding's reference is 1 to 200 characters")
    return moves(
        OWNER_FUNDING,
        reference,
        (HOT_WALLET, OWNER_FUNDING, usdt, "USDT"),
        (HOT_WALLET, OWNER_FUNDING, trx_sun, "TRX"),
    )


@dataclass(frozen=True)
class InFlight:
    """A transfer broadcast and not yet booked: it may already have moved, or not."""

    kind: str  # payout, refund, sweep_topup, sweep
    reference: str  # the transfer's or sweep's id
    txid: str | None
    source: str
    destination: str
    currency: Currency
    amount: int
    fee_bound: int  # the most TRX its sender can burn for it (sun)

    def bounds(self) -> Iterable[tuple[str, Currency, int, int]]:
        """(address, currency, low, high): how far it may move each balance it touches."""
        yield self.source, self.currency, -self.amount, 0
        yield self.destination, self.currency, 0, self.amount
        yield self.source, "TRX", -self.fee_bound, 0


@dataclass(frozen=True)
class Position:
    """One address in one currency: the books, the chain, and how far transfers in flight may
    put them apart."""

    address: str
    role: Role
    currency: Currency
    ledger: int
    chain: int
    outside_ledger: int = 0
    low: int = 0
    high: int = 0
    invoice_id: str | None = None
    merchant_id: str | None = None

    @property
    def expected(self) -> int:
        return self.ledger + self.outside_ledger

    @property
    def difference(self) -> int:
        return self.chain - self.expected

    @property
    def status(self) -> Status:
        if self.difference == 0:
            return "ok"
        if self.low <= self.difference <= self.high:
            return "in_flight"
        return "difference"


def with_in_flight(positions: Sequence[Position], in_flight: Iterable[InFlight]) -> list[Position]:
    """Each position with the range its transfers in flight allow its difference to take."""
    ranges: dict[tuple[str, str], tuple[int, int]] = {}
    for transfer in in_flight:
        for address, currency, low, high in transfer.bounds():
            held = ranges.get((address, currency), (0, 0))
            ranges[(address, currency)] = (held[0] + low, held[1] + high)
    out = []
    for position in positions:
        low, high = ranges.get((position.address, position.currency), (0, 0))
        out.append(replace(position, low=position.low + low, high=position.high + high))
    return out


def reconciled(positions: Iterable[Position]) -> bool:
    """True when no position differs beyond what its transfers in flight explain."""
    return all(position.status != "difference" for position in positions)


# --- the ledger against the settlements -------------------------------------------------------


@dataclass(frozen=True)
class SettlementBooking:
    """A settlement and its ledger transaction, side by side (either may be missing)."""

    settlement_id: str
    invoice_id: str | None
    merchant_id: str | None
    status: str | None  # the settlement's; None when only a ledger transaction exists
    gross: int | None
    fee: int | None
    net: int | None
    booked: bool
    customer_funds: int  # the transaction's entries, by account (credit-positive)
    platform_fees: int
    merchant: int
    merchant_account: str | None  # the merchant account the transaction credits
    other_entries: int  # entries on any other account


@dataclass(frozen=True)
class FeeGroup:
    """Settlements of one gross amount and percentage, and the fee they took."""

    gross: int
    fee_percentage: object  # Decimal, as stored
    fee: int
    settlements: int
    example_settlement_id: str


def booking_problem(booking: SettlementBooking) -> str | None:
    """What is wrong between a settlement and its ledger transaction, or None."""
    if booking.status is None:
        # Only a reversal is booked when even the settlement's own transaction is missing.
        kind = "settlement" if booking.booked else "settlement_reversal"
        return f"a {kind} transaction in the ledger without a settlement"
    if booking.status not in ("completed", "reversed"):
        return f"the ledger books a settlement that is {booking.status}" if booking.booked else None
    if not booking.booked:
        return f"a {booking.status} settlement missing from the ledger"
    assert booking.gross is not None and booking.fee is not None and booking.net is not None
    expected = {
        "customer_funds": -booking.gross,
        "platform_fees": booking.fee,
        f"merchant:{booking.merchant_id}": booking.net,
    }
    found = {
        "customer_funds": booking.customer_funds,
        "platform_fees": booking.platform_fees,
        f"{booking.merchant_account}": booking.merchant,
    }
    wrong = [
        f"{account} {found.get(account, 0)} instead of {amount}"
        for account, amount in expected.items()
        if found.get(account, 0) != amount
    ]
    if booking.other_entries:
        wrong.append(f"{booking.other_entries} entries on other accounts")
    if wrong:
        return "booked " + ", ".join(wrong)
    if booking.status == "reversed":
        # Its own booking is right, so the database found its reversal missing or wrong.
        return "a reversed settlement whose settlement_reversal does not book back its amounts"
    return None


def fee_problem(group: FeeGroup, computed_fee: int) -> str | None:
    """A fee that is not what the fee rule gives for its gross and percentage."""
    if group.fee == computed_fee:
        return None
    return (
        f"{group.settlements} settlement(s) of gross {group.gross} at {group.fee_percentage} % "
        f"took a fee of {group.fee}, the rule gives {computed_fee}"
    )
