"""Create the platform's topics before any consumer subscribes to them.

The brokers here never create topics by themselves (``auto.create.topics.enable=false``): a topic
made by accident gets the broker's default partition count, and a table whose source topic and
changelog disagree on partitions cannot recover. So every worker, when it starts and before its
consumer subscribes, creates what is missing with the right partitions, retention or compaction,
and refuses to start when an existing topic has another partition count.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

logger = logging.getLogger(__name__)


class TopicMismatch(RuntimeError):
    """A topic exists with another partition count than the platform needs."""


@dataclass(frozen=True)
class TopicRequirement:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


async def ensure_topics(
    admin: AIOKafkaAdminClient, required: Iterable[TopicRequirement], replication_factor: int
) -> list[str]:
    """Create missing topics; return the names created. Raises TopicMismatch on a conflict."""
    wanted = {topic.name: topic for topic in required}
    existing = {
        described["topic"]: len(described["partitions"])
        for described in await admin.describe_topics(list(wanted))
        if described["error_code"] == 0
    }
    for name, partitions in existing.items():
        if partitions != wanted[name].partitions:
            raise TopicMismatch(
                f"topic {name} has {partitions} partitions, the platform needs "
                f"{wanted[name].partitions}; it was created by something else — recreate it"
            )
    missing = [topic for name, topic in wanted.items() if name not in existing]
    created = []
    for topic in missing:
        response = await admin.create_topics(
            [NewTopic(topic.name, topic.partitions, replication_factor, topic_configs=topic.config)]
        )
        for name, code, *message in response.topic_errors:
            error = for_code(code)
            if code == 0:
                created.append(name)
            elif error is not TopicAlreadyExistsError:  # else another worker was quicker
                raise error(f"creating topic {name}: {message[0] if message else ''}")
    if created:
        logger.info("created topics: %s", ", ".join(created))
    return created
