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
from app.adapters.postgres.pool import Connections, SqlStore
from app.adapters.postgres.sweeps import HELD_BY_ADDRESS, fetch_all
from app.domain.errors import AlreadyExists
from app.domain.ledger import HOT_WALLET
from app.domain.reconcile import OWNER_FUNDING, owner_funding
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
