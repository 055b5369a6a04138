"""One memory budget for every RocksDB database under the worker's Faust tables.

Faust opens one RocksDB database per table partition (five tables × 12 partitions, owned or
standby: about 60 per worker) and gives each Faust's defaults: three 64 MiB memtables and its own
2 GiB block cache. A memtable is flushed to disk only when full, and one table partition receives
under a kilobyte per invoice, so at a steady load nothing was ever flushed: each worker's RSS grew
by about 12 KiB per invoice, without end (the sustained-load benchmark, bench/bench_load.py).

Patched here: every database shares one ``WriteBufferManager`` (memtables of all of them together
flushed from about ``WRITE_BUFFERS_BYTES``: a soft limit, as memtables being flushed and RocksDB's
arena blocks of 1/8 of a memtable per database count too, so ~60 MiB at most was seen with 60
databases) and one block cache (``BLOCK_CACHE_BYTES``, index and filter blocks included), with
small memtables. What is written, when it is committed and the changelogs
are unchanged: this only decides how often RocksDB writes its memtables to its own files.
"""

from __future__ import annotations

from typing import Any, Final

from faust.stores import rocksdb as faust_rocksdb

WRITE_BUFFERS_BYTES: Final = 32 << 20  # every memtable of every table partition, together
BLOCK_CACHE_BYTES: Final = 16 << 20  # reads of every table partition, together
# RocksDB reserves memtable memory in blocks of 1/8 of this: small, as partitions are many.
MEMTABLE_BYTES: Final = 4 << 20
MEMTABLES_PER_DATABASE: Final = 2

_shared: dict[str, Any] = {}
_faust_as_options = faust_rocksdb.RocksDBOptions.as_options


def _shared_budget() -> tuple[Any, Any]:
    """The process's write buffer manager and block cache, made on first use."""
    rocksdict = faust_rocksdb.rocksdict
    if not _shared:
        _shared["cache"] = rocksdict.Cache(BLOCK_CACHE_BYTES)
        # allow_stall=False: over budget, RocksDB flushes early instead of blocking writers.
        _shared["writes"] = rocksdict.WriteBufferManager(WRITE_BUFFERS_BYTES, False)
    return _shared["writes"], _shared["cache"]


def as_options(self: faust_rocksdb.RocksDBOptions) -> Any:
    """Faust's options for one table partition's database, on the shared budget."""
    if not self.use_rocksdict:  # a table opened with python-rocksdb: Faust's own options
        return _faust_as_options(self)
    rocksdict = faust_rocksdb.rocksdict
    writes, cache = _shared_budget()
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    if self.max_open_files is not None:  # None: Faust found no limit to stay under
        options.set_max_open_files(self.max_open_files)
    options.set_write_buffer_size(min(self.write_buffer_size, MEMTABLE_BYTES))
    options.set_max_write_buffer_number(min(self.max_write_buffer_number, MEMTABLES_PER_DATABASE))
    options.set_target_file_size_base(self.target_file_size_base)
    options.set_write_buffer_manager(writes)
    table = rocksdict.BlockBasedOptions()
    table.set_bloom_filter(self.bloom_filter_size, block_based=True)
    table.set_block_cache(cache)
    table.set_cache_index_and_filter_blocks(True)
    table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
    options.set_block_based_table_factory(table)
    return options


def install() -> None:
    """Patch ``RocksDBOptions.as_options`` once; refuses a Faust that does not look as expected."""
    options_class = faust_rocksdb.RocksDBOptions
    if getattr(options_class, "_checkout_budget_installed", False):
        return
    if not getattr(faust_rocksdb, "USE_ROCKSDICT", False) or not hasattr(
        options_class, "as_options"
    ):
        raise RuntimeError(
            "faust's RocksDB store no longer uses rocksdict through RocksDBOptions.as_options: "
            "app/runtime/table_memory.py must be reviewed for this faust-streaming version"
        )
    setattr(options_class, "as_options", as_options)  # noqa: B010 (a method replaced)
    setattr(options_class, "_checkout_budget_installed", True)  # noqa: B010
