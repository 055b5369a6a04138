"""``checkout consumers lag``: how far each consumer group is behind, per topic and partition.

The lag of a partition is its end offset less the group's committed offset (Kafka's own view,
the same as ``kafka-consumer-groups --describe``): what the group has still to process. By
default the platform's groups — the workers' (the Faust app id) and the signer's — are shown;
``--group`` names others (an integrator's), ``--all`` shows every group of the cluster.
``--fail-over N`` exits 1 when a group's total lag is above N, for a script or a cron check.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import click

from app.adapters.kafka.operations import KafkaOperations, PartitionLag
from app.runtime.cli_support import json_option, print_json, refuse, table
from app.settings import Settings


def consumers_group(settings: Settings) -> click.Group:
    @click.group(name="consumers")
    def consumers() -> None:
        """Kafka consumer groups of the platform and its integrators."""

    @consumers.command(name="lag")
    @click.option("--group", "groups", multiple=True, help="A consumer group (repeatable).")
    @click.option("--all", "every", is_flag=True, help="Every consumer group of the cluster.")
    @click.option(
        "--fail-over",
        type=click.IntRange(0),
        default=None,
        help="Exit 1 when a group's total lag is above this many messages.",
    )
    @click.option("--partitions", is_flag=True, help="One line per partition, not per topic.")
    @json_option
    def lag(
        groups: tuple[str, ...],
        every: bool,
        fail_over: int | None,
        partitions: bool,
        as_json: bool,
    ) -> None:
        """Committed offset, end offset and lag per group, topic and partition."""
        if groups and every:
            refuse("consumers lag", "give --group or --all, not both")
        rows = asyncio.run(_lag(settings, groups, every))
        totals: dict[str, int] = defaultdict(int)
        for row in rows:
            totals[row.group] += row.lag
        if as_json:
            print_json(
                {
                    "groups": [
                        {"group": group, "lag": total} for group, total in sorted(totals.items())
                    ],
                    "partitions": [_row_json(row) for row in rows],
                }
            )
        else:
            _print(rows, partitions)
        over = [
            group for group, total in totals.items() if fail_over is not None and total > fail_over
        ]
        raise SystemExit(1 if over else 0)

    return consumers


async def _lag(settings: Settings, groups: tuple[str, ...], every: bool) -> list[PartitionLag]:
    async with KafkaOperations(settings.kafka_bootstrap_servers) as kafka:
        known = await kafka.groups()
        if every:
            wanted = known
        elif groups:
            missing = [group for group in groups if group not in known]
            if missing:
                refuse(
                    "consumers lag",
                    f"no consumer group {', '.join(missing)[:200]} on the cluster "
                    f"({len(known)} groups; --all lists them)",
                )
            wanted = list(groups)
        else:
            ours = {settings.app_id, f"{settings.app_id}-signer"}
            wanted = [group for group in known if group in ours]
        return await kafka.consumer_lag(wanted)


def _row_json(row: PartitionLag) -> dict[str, Any]:
    return {
        "group": row.group,
        "topic": row.topic,
        "partition": row.partition,
        "committed": row.committed,
        "end": row.end,
        "lag": row.lag,
    }


def _print(rows: list[PartitionLag], partitions: bool) -> None:
    if not rows:
        print("no committed offsets for these groups")
        return
    if partitions:
        table(
            ("group", "topic", "partition", "committed", "end", "lag"),
            [
                (
                    r.group,
                    r.topic,
                    r.partition,
                    "-" if r.committed is None else r.committed,
                    r.end,
                    r.lag,
                )
                for r in rows
            ],
            numeric=(2, 3, 4, 5),
        )
        return
    per_topic: dict[tuple[str, str], list[PartitionLag]] = defaultdict(list)
    for row in rows:
        per_topic[(row.group, row.topic)].append(row)
    table(
        ("group", "topic", "partitions", "lag", "max partition lag"),
        [
            (group, topic, len(items), sum(r.lag for r in items), max(r.lag for r in items))
            for (group, topic), items in sorted(per_topic.items())
        ],
        numeric=(2, 3, 4),
    )
