"""The faust-streaming 0.15 defects we patch, installed by one call (see README.md here)."""

from __future__ import annotations

from app.runtime import changelog_check, commit_guard, producer_flush, table_memory


def install() -> None:
    """Patch Faust before any worker starts; each patch refuses a Faust it does not recognise."""
    # Offsets only ever commit after their table writes are on the broker.
    producer_flush.install()
    # Offsets never commit past a message no agent acknowledged.
    commit_guard.install()
    # Every table partition's RocksDB on one memory budget: worker RSS stays flat under load.
    table_memory.install()
    # A changelog whose partitions are not known yet is no mismatch: no payment dead-lettered.
    changelog_check.install()
