"""Balances with an undo journal per block, so a reorg can unwind blocks and a solidified read can
look past the blocks that are not solidified yet."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_MISSING: Any = object()

JournalEntry = tuple[str, Any, Any]


class Ledger:
    """TRX balances (SUN), account activation times, free bandwidth, TRC-20 balances and
    allowances."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[Any, int]] = {
            "trx": {},  # address -> SUN; present means the account is activated
            "created": {},  # address -> activation time, ms
            "free_net_used": {},  # address -> free bandwidth bytes used as of free_net_time
            "free_net_time": {},  # address -> head block time of the last free use, ms
            "token": {},  # address -> USDT base units
            "allowance": {},  # (owner, spender) -> USDT base units
        }
        self._journal: list[JournalEntry] | None = None

    def get(self, table: str, key: Any, default: int = 0) -> int:
        return self.tables[table].get(key, default)

    def exists(self, address: bytes) -> bool:
        return address in self.tables["trx"]

    def set(self, table: str, key: Any, value: int) -> None:
        rows = self.tables[table]
        if self._journal is not None:
            self._journal.append((table, key, rows.get(key, _MISSING)))
        rows[key] = value

    def add(self, table: str, key: Any, delta: int) -> None:
        self.set(table, key, self.get(table, key) + delta)

    def record(self) -> list[JournalEntry]:
        """Start journaling the changes of one block; returns the journal to keep with it."""
        self._journal = []
        return self._journal

    def stop_recording(self) -> None:
        self._journal = None

    def revert(self, journal: list[JournalEntry]) -> None:
        for table, key, old in reversed(journal):
            rows = self.tables[table]
            if old is _MISSING:
                rows.pop(key, None)
            else:
                rows[key] = old

    def value_before(
        self, table: str, key: Any, journals: Iterable[list[JournalEntry]]
    ) -> int | None:
        """The value before the first of these journals (oldest first) changed it; None if absent.

        With the journals of the blocks above the solidified one, this is the solidified value.
        """
        for journal in journals:
            for entry_table, entry_key, old in journal:
                if entry_table == table and entry_key == key:
                    return None if old is _MISSING else old
        return self.tables[table].get(key)


class Overlay(Ledger):
    """Changes kept apart from a base ledger, which they shadow but never touch.

    The chain executes the pending pool on one, as java-tron does on its pending state, so that
    broadcast checks see what earlier pending transactions will have spent. It holds absolute
    values: it is stale as soon as the base changes, and is then rebuilt.
    """

    def __init__(self, base: Ledger) -> None:
        super().__init__()
        self.base = base

    def get(self, table: str, key: Any, default: int = 0) -> int:
        rows = self.tables[table]
        if key in rows:
            return rows[key]
        return self.base.get(table, key, default)

    def exists(self, address: bytes) -> bool:
        return address in self.tables["trx"] or self.base.exists(address)
