"""The public topics are the integrator contract: names and partition counts from DESIGN.md."""

from __future__ import annotations

import pytest

from app.runtime.topics import ALL_TOPICS, DEPOSITS, INVOICE_COMMANDS, PUBLIC_TOPICS

pytestmark = pytest.mark.component


def test_public_topics_and_partitions_match_the_design() -> None:
    assert {spec.name: spec.partitions for spec in PUBLIC_TOPICS} == {
        "crypto-checkout.domain-events": 12,
        "crypto-checkout.notifications": 6,
        "crypto-checkout.analytics": 3,
        "crypto-checkout.integrations": 6,
    }


def test_every_public_topic_has_a_dead_letter_twin() -> None:
    names = {spec.name for spec in ALL_TOPICS}
    for spec in PUBLIC_TOPICS:
        assert f"{spec.name}.dlq" in names


def test_internal_topics_share_the_domain_events_partition_count() -> None:
    # Invoice events (keyed by invoice id) land on the partition number of the invoice's
    # commands, so agents reading either find the invoice in their local table partition.
    assert INVOICE_COMMANDS.partitions == DEPOSITS.partitions == 12
