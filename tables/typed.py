"""A table of one kind of aggregate, keyed by its id and stored as its ``to_dict()``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Final, Generic, Protocol, TypeVar

import faust

STANDBY_BUFFER: Final = 100


class Stored(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


A = TypeVar("A", bound=Stored)


class AggregateTable(Generic[A]):
    """Typed reads and writes over a Faust table (or any mapping) of JSON-safe values."""

    def __init__(
        self,
        table: MutableMapping[Any, Any],
        *,
        load: Callable[[Mapping[str, Any]], A],
        key: Callable[[A], str],
    ) -> None:
        self._table = table
        self._load = load
        self._key = key

    def get(self, key: str) -> A | None:
        stored = self._table.get(key)
        return None if stored is None else self._load(stored)

    def put(self, value: A) -> None:
        self._table[self._key(value)] = value.to_dict()


def faust_table(app: faust.App, name: str, *, partitions: int, help: str) -> Any:
    """A Faust table with raw keys: the same bytes the producers send, so a key hashes to the
    same partition in the source topic and in the changelog (table reads are routed by that
    hash).

    Standby writes are applied to the standby's store every ``STANDBY_BUFFER`` changelog records
    (Faust's default, 1,000, held that many decoded records per table in memory); a failover
    flushes whatever is buffered first, so a smaller batch changes nothing but memory."""
    return app.Table(
        name, key_type=bytes, partitions=partitions, help=help, standby_buffer_size=STANDBY_BUFFER
    )
