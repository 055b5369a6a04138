"""Faust's check of a table's changelog partitions, made to wait for a topic's metadata.

Before a table is first written from a source topic, ``Collection._verify_source_topic_partitions``
compares the partitions of the source topic with those of the table's changelog, as the
consumer's metadata knows them, and raises ``PartitionsMismatch`` when they differ. Right after
the topics were created the metadata can list the changelog with **0** partitions (known, not
yet ready): Faust took that for a mismatch, and the agent's message went to the dead-letter topic
— deposits of the first block a fresh worker saw were dead-lettered this way in CI
(tests/integration/bench/test_bench_load_smoke.py). A count of 0 or unknown now means "not known
yet": the write goes on (its partition is the source message's, as ever) and the check runs again
at the next write, until both counts are known; a real mismatch still raises.
"""

from __future__ import annotations

from typing import Any

from faust.tables.base import Collection

_ORIGINAL = "_checkout_original_verify_source_topic_partitions"


def _verify_source_topic_partitions(self: Any, source_topic: str) -> None:
    if source_topic in self._verified_source_topics_for_partitions:
        return
    consumer = self.app.consumer
    if not consumer.topic_partitions(source_topic) or not consumer.topic_partitions(
        self.changelog_topic_name
    ):
        return  # a topic's partitions are not known yet: check at the next write
    getattr(Collection, _ORIGINAL)(self, source_topic)


def install() -> None:
    """Patch ``Collection`` once; refuses a Faust without the method it replaces."""
    if hasattr(Collection, _ORIGINAL):
        return
    original = getattr(Collection, "_verify_source_topic_partitions", None)
    if original is None:
        raise RuntimeError(
            "faust Collection has no '_verify_source_topic_partitions': "
            "app/runtime/changelog_check.py must be reviewed for this faust-streaming version"
        )
    setattr(Collection, _ORIGINAL, original)
    Collection._verify_source_topic_partitions = _verify_source_topic_partitions  # type: ignore[method-assign]
