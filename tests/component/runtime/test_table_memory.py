"""Every table partition's RocksDB database shares one write-buffer and block-cache budget."""

from __future__ import annotations

from pathlib import Path

import pytest
from faust.stores.rocksdb import RocksDBOptions

from app.runtime import table_memory

pytestmark = pytest.mark.component


def test_table_partitions_share_one_budget_and_stay_readable(tmp_path: Path) -> None:
    table_memory.install()
    options = RocksDBOptions()  # Faust's defaults: 64 MiB memtables, a 2 GiB cache each
    first = options.open(tmp_path / "deposits-0.db")
    second = options.open(tmp_path / "deposits-1.db")
    for n in range(2_000):
        first[f"addr-{n}".encode()] = b"x" * 500
        second[f"addr-{n}".encode()] = b"y" * 500
    assert first[b"addr-1999"] == b"x" * 500
    assert second[b"addr-0"] == b"y" * 500
    writes, _ = table_memory._shared_budget()
    # Both databases' memtables are counted by the one manager (a soft limit: usage may pass it).
    assert writes.enabled()
    assert 1_000_000 < writes.get_usage() <= 2 * table_memory.WRITE_BUFFERS_BYTES
    first.close()
    second.close()


def test_installing_twice_keeps_one_patch() -> None:
    table_memory.install()
    patched = RocksDBOptions.as_options
    table_memory.install()
    assert RocksDBOptions.as_options is patched is table_memory.as_options


def test_a_table_on_python_rocksdb_keeps_fausts_own_options(tmp_path: Path) -> None:
    table_memory.install()
    options = RocksDBOptions(use_rocksdict=False)
    # Faust's branch for python-rocksdb (not installed here): the patch must not build rocksdict
    # options for it.
    try:
        built = options.as_options()
    except (AttributeError, TypeError):  # rocksdb is None: Faust's own code ran, as it should
        return
    assert not isinstance(built, type(table_memory.as_options(RocksDBOptions())))
