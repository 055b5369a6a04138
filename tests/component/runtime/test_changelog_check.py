"""Faust's changelog partition check (app/runtime/changelog_check.py): a count Faust's consumer
does not know yet (0 right after the topics were made, or none) is no mismatch and is checked
again at the next write; equal counts are checked once; a real difference still raises. The
canary pins what Faust itself does with 0."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from faust.exceptions import PartitionsMismatch
from faust.tables.base import Collection

from app.runtime import changelog_check

pytestmark = pytest.mark.component

SOURCE, CHANGELOG = "ns.checkout.deposits", "app-confirmation-watch-changelog"


def a_table(partitions: dict[str, int | None]) -> Any:
    consumer = SimpleNamespace(topic_partitions=lambda topic: partitions.get(topic))
    return SimpleNamespace(
        app=SimpleNamespace(consumer=consumer),
        changelog_topic_name=CHANGELOG,
        name="confirmation-watch",
        _verified_source_topics_for_partitions=set(),
    )


def original(table: Any) -> None:
    changelog_check.install()
    getattr(Collection, changelog_check._ORIGINAL)(table, SOURCE)


def test_faust_takes_a_changelog_of_zero_partitions_for_a_mismatch() -> None:
    """Canary: when this fails, Faust learnt to wait for the metadata; drop the patch."""
    with pytest.raises(PartitionsMismatch, match="has 0 partitions"):
        original(a_table({SOURCE: 12, CHANGELOG: 0}))


@pytest.mark.parametrize("unknown", [0, None])
def test_an_unknown_count_is_checked_again_at_the_next_write(unknown: int | None) -> None:
    changelog_check.install()
    partitions: dict[str, int | None] = {SOURCE: 12, CHANGELOG: unknown}
    table = a_table(partitions)
    Collection._verify_source_topic_partitions(table, SOURCE)
    assert table._verified_source_topics_for_partitions == set()  # not taken as checked

    partitions[CHANGELOG] = 6  # the metadata arrived, and it does differ
    with pytest.raises(PartitionsMismatch):
        Collection._verify_source_topic_partitions(table, SOURCE)


def test_equal_counts_are_checked_once() -> None:
    changelog_check.install()
    partitions: dict[str, int | None] = {SOURCE: 12, CHANGELOG: 12}
    table = a_table(partitions)
    Collection._verify_source_topic_partitions(table, SOURCE)
    assert table._verified_source_topics_for_partitions == {SOURCE}
    partitions[CHANGELOG] = 1  # not looked at again
    Collection._verify_source_topic_partitions(table, SOURCE)
