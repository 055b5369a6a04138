"""``checkout ledger reconcile``: the ledger against the chain, address by address, and against
the settlements, one by one.

docs/money-out.md, "Reconcile"; the rules are app/domain/reconcile.py. The hot wallet's USDT and
TRX, and each deposit address with settled or swept money (or TRX the platform put there), are
read from the node (``balanceOf`` and ``getaccount`` at the head block) and set against the
books; transfers broadcast and not yet booked are listed and explain the differences they can.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Protocol, TypeVar, cast

from app.domain.fees import split_fee
from app.domain.ledger import Currency
from app.domain.reconcile import (
    FeeGroup,
    InFlight,
    Position,
    SettlementBooking,
    booking_problem,
    fee_problem,
    reconciled,
    with_in_flight,
)
from app.services.ports import DepositPosition, LedgerPositions, TransferRow

T = TypeVar("T")

# What a transfer's sender may burn beyond its fee limit: bandwidth (~0.35 TRX), and for a TRX
# transfer that creates its recipient 1.1 TRX. Generous: it only widens the in-flight range.
FEE_SLACK_SUN: Final = 2_000_000
NODE_CONCURRENCY: Final = 8


class ChainBalances(Protocol):
    async def token_balance(self, token_contract: str, owner: str) -> int: ...

    async def trx_balance(self, address: str) -> int: ...


@dataclass(frozen=True)
class Reconciliation:
    positions: list[Position]
    in_flight: list[InFlight]

    @property
    def ok(self) -> bool:
        return reconciled(self.positions)

    @property
    def differences(self) -> list[Position]:
        return [position for position in self.positions if position.status == "difference"]


class Reconciler:
    def __init__(
        self,
        ledger: LedgerPositions,
        chain: ChainBalances,
        *,
        hot_wallet_address: str,
        token_contract: str,
        payout_fee_limit: int,
    ) -> None:
        self._ledger = ledger
        self._chain = chain
        self._hot_wallet = hot_wallet_address
        self._token = token_contract
        self._payout_fee_limit = payout_fee_limit
        self._slots = asyncio.Semaphore(NODE_CONCURRENCY)

    async def run(self, *, everything: bool = False) -> Reconciliation:
        in_flight = [self._in_flight(row) for row in await self._ledger.in_flight()]
        usdt, trx = await self._ledger.hot_wallet()
        hot = self._hot_wallet
        positions = [
            Position(hot, "hot_wallet", "USDT", usdt, await self._usdt(hot)),
            Position(hot, "hot_wallet", "TRX", trx, await self._trx(hot)),
        ]
        deposits = await self._ledger.deposits(everything)
        for pair in await asyncio.gather(*(self._deposit(d) for d in deposits)):
            positions.extend(pair)
        return Reconciliation(with_in_flight(positions, in_flight), in_flight)

    async def _deposit(self, deposit: DepositPosition) -> tuple[Position, Position]:
        address = deposit.address
        usdt_chain, trx_chain = await asyncio.gather(self._usdt(address), self._trx(address))
        # Received and never taken into the ledger (a late payment, an underpayment not resolved,
        # one still confirming): expected on chain, shown apart.
        unsettled = max(0, (deposit.received or 0) - deposit.held - deposit.swept)
        invoice_id, merchant_id = deposit.invoice_id, deposit.merchant_id
        return (
            Position(
                address,
                "deposit",
                "USDT",
                deposit.held,
                usdt_chain,
                outside_ledger=unsettled,
                invoice_id=invoice_id,
                merchant_id=merchant_id,
            ),
            Position(
                address,
                "deposit",
                "TRX",
                deposit.trx,
                trx_chain,
                invoice_id=invoice_id,
                merchant_id=merchant_id,
            ),
        )

    def _in_flight(self, row: TransferRow) -> InFlight:
        if row.kind in ("payout", "refund"):
            fee_bound = self._payout_fee_limit + FEE_SLACK_SUN
        else:
            fee_bound = row.fee_limit + FEE_SLACK_SUN
        return InFlight(
            kind=row.kind,
            reference=row.reference,
            txid=row.txid,
            source=row.source,
            destination=row.destination,
            currency=cast(Currency, row.currency),
            amount=row.amount,
            fee_bound=fee_bound,
        )

    async def _usdt(self, address: str) -> int:
        return await self._limited(self._chain.token_balance(self._token, address))

    async def _trx(self, address: str) -> int:
        return await self._limited(self._chain.trx_balance(address))

    async def _limited(self, call: Awaitable[T]) -> T:
        async with self._slots:
            return await call


# --- the ledger against the settlements -------------------------------------------------------


class SettlementBooks(Protocol):
    """Settlements beside their ledger transactions (app/adapters/postgres/reconcile.py)."""

    async def counted(self) -> int: ...

    async def bookings_that_differ(self, limit: int) -> list[SettlementBooking]: ...

    async def fee_groups(self) -> list[FeeGroup]: ...


@dataclass(frozen=True)
class SettlementDifference:
    settlement_id: str
    invoice_id: str | None
    merchant_id: str | None
    problem: str


@dataclass(frozen=True)
class SettlementReconciliation:
    settlements: int
    differences: list[SettlementDifference]

    @property
    def ok(self) -> bool:
        return not self.differences


async def reconcile_settlements(
    books: SettlementBooks, *, limit: int = 1_000
) -> SettlementReconciliation:
    """Every settlement booked once, with exactly its gross, fee and net, and every fee what
    the fee rule gives (``split_fee``): the seeds' "fee collection accuracy 100 %"."""
    differences = []
    for booking in await books.bookings_that_differ(limit):
        problem = booking_problem(booking)
        if problem is not None:
            differences.append(
                SettlementDifference(
                    booking.settlement_id, booking.invoice_id, booking.merchant_id, problem
                )
            )
    for group in await books.fee_groups():
        computed = split_fee(group.gross, Decimal(str(group.fee_percentage))).platform_fee_amount
        problem = fee_problem(group, computed)
        if problem is not None:
            differences.append(
                SettlementDifference(group.example_settlement_id, None, None, problem)
            )
    return SettlementReconciliation(await books.counted(), differences)
