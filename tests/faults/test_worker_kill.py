"""kill -9 of the worker that leads, under a steady load (docs/reliability.md, "Recovery after
kill -9"): the other worker takes its partitions and the leader's timers (the chain watcher
among them) once Kafka's session expired; nothing is lost, nothing settled twice."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.faults.conftest import KafkaCluster
from tests.faults.scenario import under_load
from tests.support.platform import Platform

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("infrastructure")]


def leading_worker(platform: Platform) -> int:
    """The worker whose chain watcher has read the node's head: Faust's leader."""
    head = int(platform.sim.status()["head"]["number"])
    for index, internal in enumerate(platform.internal_urls):
        metrics = httpx.get(f"{internal}/metrics", timeout=5).text
        cursor = re.search(r"^checkout_chain_cursor_height (\S+)$", metrics, re.MULTILINE)
        if cursor is not None and int(float(cursor.group(1))) >= head - 1:
            return index
    raise AssertionError("no worker's chain watcher is at the node's head")


def test_kill_9_of_the_leader_under_load_loses_nothing_and_settles_nothing_twice(
    platform: Platform, kafka_cluster: KafkaCluster
) -> None:
    def kill_the_leader() -> str:
        victim = leading_worker(platform)
        platform.workers[victim].process.kill()  # SIGKILL: no goodbye to Kafka
        return f"kill -9 of worker {victim} (the leader)"

    under_load(platform, kafka_cluster, kill_the_leader)
