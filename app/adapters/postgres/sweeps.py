"""Sweeps in PostgreSQL, kept in the same transactions as the ledger they move.

migrations/0017_sweeps.sql. Every change of a sweep is one transaction that updates its row (only
if it is still at the version the caller read: two leaders racing on one sweep cannot both act),
books its ledger movement once per (kind, reference), and records the receipt it booked in
``sweep_transactions``. ``SweepReports`` reads what sweeps cost, per sweep and per merchant.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from app.adapters.postgres.journal import book
from app.adapters.postgres.pool import SqlStore, fetch_all
from app.domain.sweeps import (
    ChainTransaction,
    Sweep,
    SweepCosts,
    SweepStage,
    SweepStep,
    TxKind,
)
from app.services.ports import SigningAnswerRow, StaleSweep, SweepCandidate

_COLUMNS: Final = (
    "sweep_id",
    "deposit_address",
    "derivation_index",
    "invoice_id",
    "merchant_id",
    "amount",
    "stage",
    "version",
    "failure_reason",
    "attempts",
    "energy_budget",
    "tx_kind",
    "tx_number",
    "tx_amount",
    "tx_fee_limit",
    "txid",
    "raw_data",
    "raw_data_hex",
    "expiration_ms",
    "signature",
    "broadcast_accepted",
    "block_number",
    "trx_topped_up",
    "topup_fees",
    "sweep_fees",
    "energy_usage",
    "energy_fee",
    "net_usage",
    "net_fee",
    "out_of_energy",
    "swept_txid",
    "created_at",
    "updated_at",
    "finished_at",
)
# Set on every change: everything but the identity and the creation time.
_CHANGED: Final = (*_COLUMNS[6:-3], "updated_at", "finished_at")
_SELECT: Final = f"SELECT {', '.join(_COLUMNS)} FROM sweeps"  # noqa: S608
_OPEN: Final = "('due', 'topping_up', 'sweeping')"

# The customer funds the ledger holds on each deposit address: its share of ``customer_funds``,
# attributed to the address's invoice — the settlement's gross (booked ``customer_funds −gross``),
# a refund of what an unsettled invoice received (booked from ``customer_funds`` when requested,
# returned if it fails: read from its ledger entries), less the confirmed sweeps (booked
# ``customer_funds +x``). Read from the settlements and sweeps themselves rather than by scanning
# every ledger entry: the same figures, a few times faster. ``held`` is what a sweep may move.
HELD_BY_ADDRESS: Final = """
WITH attributed AS (
    SELECT s.invoice_id, s.merchant_id, s.created_at, s.gross_amount AS held
    FROM settlements s
    WHERE s.status = 'completed'
    UNION ALL
    SELECT o.invoice_id, o.merchant_id, t.created_at, -e.amount
    FROM outgoing_transfers o
    JOIN ledger_transactions t ON t.reference = o.transfer_id
        AND t.kind IN ('refund_requested', 'refund_failed', 'refund_cancelled')
    JOIN ledger_entries e ON e.tx_id = t.tx_id
    WHERE o.kind = 'refund' AND e.account = 'customer_funds' AND e.currency = 'USDT'
    UNION ALL
    SELECT w.invoice_id, w.merchant_id, w.created_at, -w.amount
    FROM sweeps w
    WHERE w.stage = 'confirmed'
)
SELECT d.address, d.derivation_index, a.invoice_id, min(a.merchant_id) AS merchant_id,
    min(a.created_at) AS first_booked, sum(a.held) AS held
FROM attributed a
JOIN deposit_addresses d ON d.invoice_id = a.invoice_id
GROUP BY d.address, d.derivation_index, a.invoice_id
"""


class PostgresSweeps(SqlStore):
    async def candidates(
        self,
        min_amount: int,
        limit: int,
        retry_failed_after: timedelta,
        exclude: Sequence[str] = (),
    ) -> builtins.list[SweepCandidate]:
        rows = await fetch_all(
            self._pool,
            "SELECT address, derivation_index, invoice_id, merchant_id, held"  # noqa: S608
            f" FROM ({HELD_BY_ADDRESS}) AS held_by_address"
            " WHERE held >= %(min)s AND address <> ALL(%(exclude)s) AND NOT EXISTS ("
            "   SELECT 1 FROM sweeps o WHERE o.deposit_address = held_by_address.address"
            f"  AND (o.stage IN {_OPEN}"
            "        OR (o.stage = 'failed' AND o.finished_at > now() - %(retry)s)))"
            " ORDER BY first_booked, address LIMIT %(limit)s",
            {
                "min": min_amount,
                "retry": retry_failed_after,
                "limit": limit,
                "exclude": list(exclude),
            },
        )
        return [
            SweepCandidate(
                deposit_address=address,
                derivation_index=int(index),
                invoice_id=invoice_id,
                merchant_id=merchant_id,
                held=int(held),
            )
            for address, index, invoice_id, merchant_id, held in rows
        ]

    async def backlog(self, min_amount: int) -> tuple[int, int]:
        (row,) = await fetch_all(
            self._pool,
            "SELECT count(*), coalesce(sum(held), 0)"  # noqa: S608
            f" FROM ({HELD_BY_ADDRESS}) AS held_by_address WHERE held >= %(min)s",
            {"min": min_amount},
        )
        return int(row[0]), int(row[1])

    async def create(self, sweep: Sweep) -> bool:
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "INSERT INTO sweeps (sweep_id, deposit_address, derivation_index, invoice_id,"
                " merchant_id, amount, stage, version, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (
                    sweep.sweep_id,
                    sweep.deposit_address,
                    sweep.derivation_index,
                    sweep.invoice_id,
                    sweep.merchant_id,
                    sweep.amount,
                    sweep.stage.value,
                    sweep.version,
                    sweep.created_at,
                    sweep.updated_at,
                ),
            )
            return bool(cur.rowcount == 1)

    async def get(self, sweep_id: str) -> Sweep | None:
        row = await self._fetchone(f"{_SELECT} WHERE sweep_id = %s", (sweep_id,))
        return None if row is None else _sweep(row)

    async def open_sweeps(self, limit: int) -> builtins.list[Sweep]:
        rows = await self._fetchall(
            f"{_SELECT} WHERE stage IN {_OPEN} ORDER BY created_at, sweep_id LIMIT %s", (limit,)
        )
        return [_sweep(row) for row in rows]

    async def save(self, before: Sweep, step: SweepStep) -> None:
        values = _values(step.state)
        assignments = ", ".join(f"{column} = %({column})s" for column in _CHANGED)
        async with self._transaction() as cur:
            await cur.execute(
                f"UPDATE sweeps SET {assignments},"  # noqa: S608
                " request_sent_at = CASE WHEN txid IS NOT DISTINCT FROM %(txid)s"
                " THEN request_sent_at END"
                " WHERE sweep_id = %(before_id)s AND version = %(before_version)s",
                {**values, "before_id": before.sweep_id, "before_version": before.version},
            )
            if cur.rowcount != 1:
                raise StaleSweep(f"{before.sweep_id} changed since it was read")
            await book(cur, step.movement)
            booked = step.booked
            if booked is not None:
                tx, receipt = booked.tx, booked.receipt
                await cur.execute(
                    "INSERT INTO sweep_transactions (sweep_id, tx_number, kind, txid, amount,"
                    " block_number, result, fee, energy_usage, energy_fee, net_usage, net_fee)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (
                        booked.sweep_id,
                        tx.number,
                        tx.kind.value,
                        tx.txid,
                        tx.amount,
                        receipt.block_number,
                        receipt.result,
                        receipt.fee,
                        receipt.energy_usage,
                        receipt.energy_fee,
                        receipt.net_usage,
                        receipt.net_fee,
                    ),
                )

    async def mark_request_sent(self, sweep: Sweep, at: datetime) -> None:
        await self._execute(
            "UPDATE sweeps SET request_sent_at = %s WHERE sweep_id = %s AND txid = %s",
            (at, sweep.sweep_id, sweep.tx.txid if sweep.tx else None),
        )

    async def request_sent_at(self, sweep_id: str) -> datetime | None:
        row = await self._fetchone(
            "SELECT request_sent_at FROM sweeps WHERE sweep_id = %s", (sweep_id,)
        )
        return None if row is None else row[0]

    async def answer(self, request_id: str) -> SigningAnswerRow | None:
        row = await self._fetchone(
            "SELECT request_id, txid, signature, refused, message FROM signing_answers"
            " WHERE request_id = %s",
            (request_id,),
        )
        return None if row is None else SigningAnswerRow(*row)

    async def pending_payouts(self) -> int:
        row = await self._fetchone(
            "SELECT coalesce(sum(amount), 0) FROM outgoing_transfers"
            " WHERE stage IN ('requested', 'approved', 'signing')",
            (),
        )
        return 0 if row is None else int(row[0])


@dataclass(frozen=True)
class SweepCost:
    """One sweep and what it cost (sun; energy units; bytes)."""

    sweep_id: str
    stage: str
    deposit_address: str
    merchant_id: str
    invoice_id: str
    amount: int
    trx_topped_up: int
    topup_fees: int
    sweep_fees: int
    energy_usage: int
    net_usage: int
    net_fee: int
    out_of_energy: int
    attempts: int
    swept_txid: str | None
    created_at: datetime
    finished_at: datetime | None

    @property
    def burned(self) -> int:
        return self.topup_fees + self.sweep_fees


@dataclass(frozen=True)
class MerchantSweepCost:
    merchant_id: str
    confirmed: int
    failed: int
    open: int
    usdt_swept: int
    trx_topped_up: int
    trx_burned: int
    energy_usage: int
    net_usage: int
    net_fee: int


class SweepReports(SqlStore):
    """What sweeps cost: per sweep (newest first) and per merchant (every sweep)."""

    async def sweeps(self, limit: int) -> builtins.list[SweepCost]:
        rows = await self._fetchall(
            "SELECT sweep_id, stage, deposit_address, merchant_id, invoice_id, amount,"
            " trx_topped_up, topup_fees, sweep_fees, energy_usage, net_usage, net_fee,"
            " out_of_energy, attempts, swept_txid, created_at, finished_at"
            " FROM sweeps ORDER BY created_at DESC, sweep_id DESC LIMIT %s",
            (limit,),
        )
        return [SweepCost(*row) for row in rows]

    async def merchants(self) -> builtins.list[MerchantSweepCost]:
        rows = await self._fetchall(
            "SELECT merchant_id,"  # noqa: S608
            " count(*) FILTER (WHERE stage = 'confirmed'),"
            " count(*) FILTER (WHERE stage = 'failed'),"
            f" count(*) FILTER (WHERE stage IN {_OPEN}),"
            " coalesce(sum(amount) FILTER (WHERE stage = 'confirmed'), 0),"
            " sum(trx_topped_up), sum(topup_fees + sweep_fees), sum(energy_usage),"
            " sum(net_usage), sum(net_fee)"
            " FROM sweeps GROUP BY merchant_id ORDER BY merchant_id",
            (),
        )
        return [MerchantSweepCost(row[0], *(int(value) for value in row[1:])) for row in rows]


def _values(sweep: Sweep) -> dict[str, Any]:
    tx = sweep.tx
    costs = sweep.costs
    return {
        "stage": sweep.stage.value,
        "version": sweep.version,
        "failure_reason": sweep.failure_reason,
        "attempts": sweep.attempts,
        "energy_budget": sweep.energy_budget,
        "tx_kind": tx.kind.value if tx else None,
        "tx_number": tx.number if tx else None,
        "tx_amount": tx.amount if tx else None,
        "tx_fee_limit": tx.fee_limit if tx else None,
        "txid": tx.txid if tx else None,
        "raw_data": json.dumps(tx.raw_data) if tx else None,
        "raw_data_hex": tx.raw_data_hex if tx else None,
        "expiration_ms": tx.expiration_ms if tx else None,
        "signature": tx.signature if tx else None,
        "broadcast_accepted": tx.broadcast_accepted if tx else False,
        "block_number": tx.block_number if tx else None,
        "trx_topped_up": costs.topped_up,
        "topup_fees": costs.topup_fees,
        "sweep_fees": costs.sweep_fees,
        "energy_usage": costs.energy_usage,
        "energy_fee": costs.energy_fee,
        "net_usage": costs.net_usage,
        "net_fee": costs.net_fee,
        "out_of_energy": costs.out_of_energy,
        "swept_txid": sweep.swept_txid,
        "updated_at": sweep.updated_at,
        "finished_at": sweep.finished_at,
    }


def _sweep(row: Sequence[Any]) -> Sweep:
    values = dict(zip(_COLUMNS, row, strict=True))
    tx = None
    if values["txid"] is not None:
        tx = ChainTransaction(
            kind=TxKind(values["tx_kind"]),
            number=int(values["tx_number"]),
            txid=values["txid"],
            raw_data=values["raw_data"] or {},
            raw_data_hex=values["raw_data_hex"] or "",
            expiration_ms=int(values["expiration_ms"] or 0),
            amount=int(values["tx_amount"]),
            fee_limit=int(values["tx_fee_limit"] or 0),
            signature=values["signature"],
            broadcast_accepted=bool(values["broadcast_accepted"]),
            block_number=None if values["block_number"] is None else int(values["block_number"]),
        )
    return Sweep(
        sweep_id=values["sweep_id"],
        deposit_address=values["deposit_address"],
        derivation_index=int(values["derivation_index"]),
        invoice_id=values["invoice_id"],
        merchant_id=values["merchant_id"],
        amount=int(values["amount"]),
        stage=SweepStage(values["stage"]),
        created_at=values["created_at"],
        updated_at=values["updated_at"],
        version=int(values["version"]),
        tx=tx,
        attempts=int(values["attempts"]),
        energy_budget=int(values["energy_budget"]),
        costs=SweepCosts(
            topped_up=int(values["trx_topped_up"]),
            topup_fees=int(values["topup_fees"]),
            sweep_fees=int(values["sweep_fees"]),
            energy_usage=int(values["energy_usage"]),
            energy_fee=int(values["energy_fee"]),
            net_usage=int(values["net_usage"]),
            net_fee=int(values["net_fee"]),
            out_of_energy=int(values["out_of_energy"]),
        ),
        failure_reason=values["failure_reason"],
        swept_txid=values["swept_txid"],
        finished_at=values["finished_at"],
    )
