"""Every Kafka topic of crypto-checkout, declared in one place with its partition count.

Public topics are the integrator contract (DESIGN.md, docs/events.md): their names, keys and
partition counts do not change within a major version. ``checkout.*`` topics are internal to the
workers. Each public topic has a ``<topic>.dlq`` twin that receives what could not be processed,
with the error, so nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from app.runtime.topic_admin import TopicRequirement

if TYPE_CHECKING:  # the types only: this module does not need Faust to run
    import faust

RETENTION_PUBLIC = timedelta(days=7)
RETENTION_DLQ = timedelta(days=30)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    key: str
    retention: timedelta = RETENTION_PUBLIC
    public: bool = False
    # Public topics carry each event's own JSON bytes (the integrator contract, byte for byte);
    # internal ones carry JSON objects that Faust encodes and decodes.
    serializer: str = "raw"


DOMAIN_EVENTS = TopicSpec("crypto-checkout.domain-events", 12, "aggregate id", public=True)
NOTIFICATIONS = TopicSpec("crypto-checkout.notifications", 6, "aggregate id", public=True)
ANALYTICS = TopicSpec("crypto-checkout.analytics", 3, "merchant id", public=True)
INTEGRATIONS = TopicSpec("crypto-checkout.integrations", 6, "aggregate id", public=True)
PUBLIC_TOPICS = (DOMAIN_EVENTS, NOTIFICATIONS, ANALYTICS, INTEGRATIONS)

# Internal. The invoice agent's commands, keyed by invoice id. Everything that happens at a
# deposit address, keyed by that address: the invoice agent registers each new address there,
# the chain watcher publishes the transfers to it, their orphaning, and every chain head (sent to
# each partition, so the payment agent counts confirmations in order with the transfers).
INVOICE_COMMANDS = TopicSpec("checkout.invoice-commands", 12, "invoice id", serializer="json")
DEPOSITS = TopicSpec("checkout.deposits", 12, "deposit address", serializer="json")
# The signer's (docs/money-out.md): requests from the workers, answers from the signer, keyed by
# request id. The signer reads and writes only these two.
SIGNING_REQUESTS = TopicSpec("checkout.signing-requests", 3, "request id", serializer="json")
SIGNATURES = TopicSpec("checkout.signatures", 3, "request id", serializer="json")
INTERNAL_TOPICS = (INVOICE_COMMANDS, DEPOSITS, SIGNING_REQUESTS, SIGNATURES)


def dead_letter(spec: TopicSpec) -> TopicSpec:
    """The dead-letter twin of a topic: few partitions, long retention, same key."""
    return TopicSpec(f"{spec.name}.dlq", 3, spec.key, RETENTION_DLQ, spec.public, "raw")


ALL_TOPICS: tuple[TopicSpec, ...] = (
    *PUBLIC_TOPICS,
    *(dead_letter(spec) for spec in PUBLIC_TOPICS),
    *INTERNAL_TOPICS,
    *(dead_letter(spec) for spec in INTERNAL_TOPICS),
)


def topic_name(spec: TopicSpec, namespace: str = "") -> str:
    """The topic's name on the cluster: ``<namespace>.<name>`` when a namespace is set."""
    return f"{namespace}.{spec.name}" if namespace else spec.name


def declare(app: faust.App, spec: TopicSpec, namespace: str = "") -> faust.TopicT:
    return app.topic(
        topic_name(spec, namespace),
        partitions=spec.partitions,
        retention=spec.retention,
        value_serializer=spec.serializer,
        key_serializer="raw",
    )


class Topics:
    """Every topic of the platform declared on one Faust app, found by its contract name."""

    def __init__(self, app: faust.App, namespace: str = "") -> None:
        self.namespace = namespace
        self._declared = {spec.name: declare(app, spec, namespace) for spec in ALL_TOPICS}
        # A message knows its topic by its name on the cluster (namespace included).
        self._dead_letters = {
            topic_name(spec, namespace): self._declared[dead_letter(spec).name]
            for spec in (*PUBLIC_TOPICS, *INTERNAL_TOPICS)
        }

    def __getitem__(self, spec: TopicSpec) -> faust.TopicT:
        return self._declared[spec.name]

    def dead_letter_of(self, source_topic: str) -> faust.TopicT:
        """The dead-letter topic of ``source_topic`` (its name on the cluster)."""
        try:
            return self._dead_letters[source_topic]
        except KeyError:
            raise KeyError(f"{source_topic} is not a topic of this platform") from None

    def cluster_name(self, spec: TopicSpec) -> str:
        return topic_name(spec, self.namespace)

    def requirements(self) -> list[TopicRequirement]:
        """Our topics as they must exist before any consumer starts."""
        return [
            TopicRequirement(
                topic_name(spec, self.namespace),
                spec.partitions,
                {"retention.ms": str(int(spec.retention.total_seconds() * 1000))},
            )
            for spec in ALL_TOPICS
        ]
