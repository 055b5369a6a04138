"""Booking a movement in the general journal (migrations/0016_money_out.sql), inside a caller's
transaction: once per (kind, reference), its entries balanced per currency (PostgreSQL checks at
commit)."""

from __future__ import annotations

from typing import Any

from app.domain.ledger import Movement


async def book(cur: Any, movement: Movement | None) -> bool:
    """Book ``movement`` on the cursor's open transaction; False if it was booked before (or
    moves nothing)."""
    if movement is None or not movement.entries:
        return False
    await cur.execute(
        "INSERT INTO ledger_transactions (kind, reference) VALUES (%s, %s)"
        " ON CONFLICT (kind, reference) DO NOTHING RETURNING tx_id",
        (movement.kind, movement.reference),
    )
    row = await cur.fetchone()
    if row is None:
        return False  # booked before: a movement is booked once
    for entry in movement.entries:
        await cur.execute(
            "INSERT INTO ledger_entries (tx_id, account, amount, currency) VALUES (%s, %s, %s, %s)",
            (row[0], entry.account, entry.amount, entry.currency),
        )
    return True
