"""The ledger's side of ``checkout ledger reconcile`` (docs/money-out.md), and the owner's
funding of the hot wallet.

Read from the journal (``hot_wallet`` and ``deposit:<address>`` accounts), the settlements and
sweeps (USDT settled at each address less what sweeps took), the invoices' read model (what each
address received, settled or not) and the transfers broadcast but not yet booked.
"""

from __future__ import annotations

import builtins
from typing import Final

from app.adapters.postgres.journal import book
from app.adapters.postgres.pool import Connections, SqlStore, fetch_all
from app.adapters.postgres.sweeps import HELD_BY_ADDRESS
from app.domain.errors import AlreadyExists
from app.domain.ledger import HOT_WALLET
from app.domain.reconcile import OWNER_FUNDING, FeeGroup, SettlementBooking, owner_funding
from app.services.ports import DepositPosition, TransferRow

_DEPOSITS: Final = f"""
WITH held AS ({HELD_BY_ADDRESS}), positions AS (
    SELECT h.address, h.invoice_id, h.merchant_id, h.held,
        coalesce((SELECT sum(w.amount) FROM sweeps w
                  WHERE w.deposit_address = h.address AND w.stage = 'confirmed'), 0) AS swept,
        (SELECT i.amount_received FROM invoice_summaries i
         WHERE i.invoice_id = h.invoice_id) AS received,
        -coalesce((SELECT sum(e.amount) FROM ledger_entries e
                   WHERE e.account = 'deposit:' || h.address AND e.currency = 'TRX'), 0) AS trx,
        EXISTS (SELECT 1 FROM sweeps o WHERE o.deposit_address = h.address
                AND o.stage IN ('due', 'topping_up', 'sweeping')) AS open
    FROM held h
)
SELECT address, invoice_id, merchant_id, held, swept, received, trx FROM positions
WHERE %(everything)s OR held <> 0 OR trx <> 0 OR open
    OR coalesce(received, 0) > held + swept
ORDER BY address
"""  # noqa: S608

# Broadcast (or signed: a broadcast whose answer was lost) and not yet booked.
_IN_FLIGHT: Final = """
SELECT kind, transfer_id, txid, %(hot)s, to_address, 'USDT', amount, 0
FROM outgoing_transfers
WHERE stage = 'broadcast' OR (stage = 'signing' AND signature IS NOT NULL)
UNION ALL
SELECT CASE tx_kind WHEN 'topup' THEN 'sweep_topup' ELSE 'sweep' END, sweep_id, txid,
    CASE tx_kind WHEN 'topup' THEN %(hot)s ELSE deposit_address END,
    CASE tx_kind WHEN 'topup' THEN deposit_address ELSE %(hot)s END,
    CASE tx_kind WHEN 'topup' THEN 'TRX' ELSE 'USDT' END,
    tx_amount, coalesce(tx_fee_limit, 0)
FROM sweeps
WHERE stage IN ('due', 'topping_up', 'sweeping') AND txid IS NOT NULL
    AND (broadcast_accepted OR signature IS NOT NULL)
ORDER BY 1, 2
"""


class PostgresLedgerPositions(SqlStore):
    def __init__(self, pool: Connections, hot_wallet_address: str) -> None:
        super().__init__(pool)
        self._hot_wallet = hot_wallet_address

    async def hot_wallet(self) -> tuple[int, int]:
        rows = await self._fetchall(
            "SELECT currency, -coalesce(sum(amount), 0) FROM ledger_entries"
            " WHERE account = %s GROUP BY currency",
            (HOT_WALLET,),
        )
        held = {currency: int(total) for currency, total in rows}
        return held.get("USDT", 0), held.get("TRX", 0)

    async def deposits(self, everything: bool) -> builtins.list[DepositPosition]:
        rows = await fetch_all(self._pool, _DEPOSITS, {"everything": everything})
        return [
            DepositPosition(
                address=address,
                invoice_id=invoice_id,
                merchant_id=merchant_id,
                held=int(held),
                swept=int(swept),
                received=None if received is None else int(received),
                trx=int(trx),
            )
            for address, invoice_id, merchant_id, held, swept, received, trx in rows
        ]

    async def in_flight(self) -> builtins.list[TransferRow]:
        rows = await fetch_all(self._pool, _IN_FLIGHT, {"hot": self._hot_wallet})
        return [
            TransferRow(
                kind=kind,
                reference=reference,
                txid=txid,
                source=source,
                destination=destination,
                currency=currency,
                amount=int(amount),
                fee_limit=int(fee_limit),
            )
            for kind, reference, txid, source, destination, currency, amount, fee_limit in rows
        ]

    async def record_funding(self, usdt: int, trx_sun: int, reference: str) -> bool:
        movement = owner_funding(usdt, trx_sun, reference)
        async with self._transaction() as cur:
            if await book(cur, movement):
                return True
            await cur.execute(
                "SELECT e.account, e.amount, e.currency FROM ledger_entries e"
                " JOIN ledger_transactions t USING (tx_id)"
                " WHERE t.kind = %s AND t.reference = %s",
                (OWNER_FUNDING, reference),
            )
            held = sorted(
                (account, int(amount), currency)
                for account, amount, currency in await cur.fetchall()
            )
        wanted = sorted((e.account, e.amount, e.currency) for e in movement.entries)
        if held != wanted:
            raise AlreadyExists(
                f"funding {reference!r} was recorded before with other amounts", param="reference"
            )
        return False


# Settlements against their ledger transactions (kind `settlement`, reference = settlement id;
# a reversed one also against its `settlement_reversal`).
_BOOKINGS: Final = """
WITH booked AS (
    SELECT t.reference AS settlement_id,
        coalesce(sum(e.amount) FILTER (WHERE e.account = 'customer_funds'), 0) AS customer_funds,
        coalesce(sum(e.amount) FILTER (WHERE e.account = 'platform_fees'), 0) AS platform_fees,
        coalesce(sum(e.amount) FILTER (
            WHERE e.account LIKE 'merchant:%%' AND e.account NOT LIKE '%%:in_flight'), 0)
            AS merchant,
        max(e.account) FILTER (
            WHERE e.account LIKE 'merchant:%%' AND e.account NOT LIKE '%%:in_flight')
            AS merchant_account,
        count(*) FILTER (WHERE e.account NOT IN ('customer_funds', 'platform_fees')
            AND NOT (e.account LIKE 'merchant:%%' AND e.account NOT LIKE '%%:in_flight'))
            AS other_entries
    FROM ledger_transactions t JOIN ledger_entries e ON e.tx_id = t.tx_id
    WHERE t.kind = 'settlement'
    GROUP BY t.reference
), reversed AS (
    SELECT t.reference AS settlement_id,
        coalesce(sum(e.amount) FILTER (WHERE e.account = 'customer_funds'), 0) AS customer_funds,
        coalesce(sum(e.amount) FILTER (WHERE e.account = 'platform_fees'), 0) AS platform_fees,
        coalesce(sum(e.amount) FILTER (WHERE e.account LIKE 'merchant:%%'), 0) AS merchant
    FROM ledger_transactions t JOIN ledger_entries e ON e.tx_id = t.tx_id
    WHERE t.kind = 'settlement_reversal'
    GROUP BY t.reference
)
SELECT coalesce(s.settlement_id, b.settlement_id, r.settlement_id), s.invoice_id, s.merchant_id,
    s.status,
    s.gross_amount, s.platform_fee_amount, s.net_amount, b.settlement_id IS NOT NULL,
    coalesce(b.customer_funds, 0), coalesce(b.platform_fees, 0), coalesce(b.merchant, 0),
    b.merchant_account, coalesce(b.other_entries, 0)
FROM settlements s FULL JOIN booked b ON b.settlement_id = s.settlement_id
-- FULL: a reversal booked for no settlement at all is a difference too.
FULL JOIN reversed r ON r.settlement_id = coalesce(s.settlement_id, b.settlement_id)
WHERE s.settlement_id IS NULL
    OR (s.status IN ('completed', 'reversed')) <> (b.settlement_id IS NOT NULL)
    -- A reversed settlement is booked back exactly: a reversal of the same amounts, no other.
    OR (s.status = 'reversed') <> (r.settlement_id IS NOT NULL)
    OR r.customer_funds <> s.gross_amount
    OR r.platform_fees <> -s.platform_fee_amount
    OR r.merchant <> -s.net_amount
    OR b.customer_funds <> -s.gross_amount
    OR b.platform_fees <> s.platform_fee_amount
    OR b.merchant <> s.net_amount
    OR b.merchant_account <> 'merchant:' || s.merchant_id
    OR b.other_entries <> 0
ORDER BY 1
LIMIT %(limit)s
"""

# The fee rule is checked in Python (app/domain/fees.py is its one definition) once per
# distinct gross and percentage, not once per settlement.
_FEE_GROUPS: Final = """
SELECT gross_amount, platform_fee_percentage, platform_fee_amount, count(*), min(settlement_id)
FROM settlements
GROUP BY gross_amount, platform_fee_percentage, platform_fee_amount
"""


class PostgresSettlementBooks(SqlStore):
    """Settlements and the ledger, for ``checkout ledger reconcile``."""

    async def counted(self) -> int:
        rows = await self._fetchall("SELECT count(*) FROM settlements", ())
        return int(rows[0][0])

    async def bookings_that_differ(self, limit: int) -> builtins.list[SettlementBooking]:
        rows = await fetch_all(self._pool, _BOOKINGS, {"limit": limit})
        return [
            SettlementBooking(
                settlement_id=row[0],
                invoice_id=row[1],
                merchant_id=row[2],
                status=row[3],
                gross=None if row[4] is None else int(row[4]),
                fee=None if row[5] is None else int(row[5]),
                net=None if row[6] is None else int(row[6]),
                booked=bool(row[7]),
                customer_funds=int(row[8]),
                platform_fees=int(row[9]),
                merchant=int(row[10]),
                merchant_account=row[11],
                other_entries=int(row[12]),
            )
            for row in rows
        ]

    async def fee_groups(self) -> builtins.list[FeeGroup]:
        rows = await self._fetchall(_FEE_GROUPS, ())
        return [
            FeeGroup(
                gross=int(row[0]),
                fee_percentage=row[1],
                fee=int(row[2]),
                settlements=int(row[3]),
                example_settlement_id=row[4],
            )
            for row in rows
        ]
