"""Publishing what the agents decided: domain events, commands, registrations, notifications.

``KafkaPublisher`` is the Kafka side of the services' publishing ports (app/services/ports.py).
Nothing a message caused is left unacknowledged when its offset commits: inside an agent's
``AckPipeline`` (app/runtime/pipelining.py) the sends are handed to the pipeline, which
acknowledges the message only once Kafka has acknowledged them all; anywhere else these methods
await the broker's acknowledgement themselves. Events are keyed by their aggregate id (an
aggregate's events stay in order on one partition) and travel as their own JSON: the bytes
integrators read are the bytes the domain produced. When tracing is on, every record carries the
trace context of what sent it in a W3C ``traceparent`` header (app/adapters/telemetry.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from app.adapters.telemetry import headers_for, inject_headers
from app.domain.analytics import PLATFORM_KEY, AnalyticsMessage, MerchantDailyMetrics
from app.domain.commands import InvoiceCommand
from app.domain.deposit import DepositRegistration
from app.domain.events import DomainEvent
from app.domain.notifications import NoticeMessage
from app.domain.observations import (
    ChainHeadAdvanced,
    Observation,
    TransferObserved,
    TransferOrphaned,
)
from app.domain.webhooks import Notification
from app.runtime.codecs import (
    ChainHeadMessage,
    DepositRegistered,
    OrphanMessage,
    TransferMessage,
    encode_deposit_message,
    encode_invoice_command,
    encode_notice,
    encode_notification,
)
from app.runtime.pipelining import defer_acknowledgement
from app.runtime.topics import (
    ANALYTICS,
    DEPOSITS,
    DOMAIN_EVENTS,
    INVOICE_COMMANDS,
    NOTIFICATIONS,
    SIGNING_REQUESTS,
    Topics,
)

EVENTS_PUBLISHED = Counter(
    "checkout_domain_events_published", "Domain events published", ["event_type"]
)


async def _all_acknowledged(pending: Sequence[Awaitable[Any]]) -> None:
    if pending and not defer_acknowledgement(pending):
        await asyncio.gather(*pending)


class KafkaPublisher:
    """Every send of the platform, to the topics of one Faust app."""

    def __init__(self, topics: Topics) -> None:
        self._domain_events = topics[DOMAIN_EVENTS]
        self._invoice_commands = topics[INVOICE_COMMANDS]
        self._deposits = topics[DEPOSITS]
        self._notifications = topics[NOTIFICATIONS]
        self._analytics = topics[ANALYTICS]
        self._signing_requests = topics[SIGNING_REQUESTS]

    async def publish_events(self, events: Iterable[DomainEvent]) -> None:
        pending = []
        for event in events:
            pending.append(
                await self._domain_events.send(
                    key=event.aggregate_id.encode(),
                    value=event.model_dump_json().encode(),
                    headers=inject_headers(),
                )
            )
            EVENTS_PUBLISHED.labels(event_type=event.event_type).inc()
        await _all_acknowledged(pending)

    async def send_invoice_commands(self, commands: Iterable[InvoiceCommand]) -> None:
        pending = [
            await self._invoice_commands.send(
                key=command.aggregate_id.encode(),
                value=encode_invoice_command(command),
                headers=inject_headers(),
            )
            for command in commands
        ]
        await _all_acknowledged(pending)

    async def send_invoice_command(
        self, command: InvoiceCommand, reply_to: Mapping[str, str] | None = None
    ) -> None:
        """One command from outside the agents (an HTTP request), acknowledged before returning."""
        delivered = await self._invoice_commands.send(
            key=command.aggregate_id.encode(),
            value=encode_invoice_command(command, reply_to),
            headers=inject_headers(),
        )
        await delivered

    async def register_deposit(self, registration: DepositRegistration) -> None:
        message = encode_deposit_message(DepositRegistered.of(registration))
        delivered = await self._deposits.send(
            key=registration.deposit_address.encode(), value=message, headers=inject_headers()
        )
        await _all_acknowledged([delivered])

    async def send_signing_request(self, request_id: str, body: Mapping[str, Any]) -> None:
        """A request to the signer (docs/money-out.md), acknowledged before returning."""
        delivered = await self._signing_requests.send(
            key=request_id.encode(), value=dict(body), headers=inject_headers()
        )
        await delivered

    async def publish_analytics(self, messages: Sequence[AnalyticsMessage]) -> None:
        """Each day's figures, keyed by merchant id (``platform`` for the platform's)."""
        pending = [
            await self._analytics.send(
                key=(
                    message.merchant_id
                    if isinstance(message, MerchantDailyMetrics)
                    else PLATFORM_KEY
                ).encode(),
                value=message.model_dump_json().encode(),
                headers=inject_headers(),
            )
            for message in messages
        ]
        await _all_acknowledged(pending)

    async def publish_notifications(self, notifications: Sequence[Notification]) -> None:
        # Each in the trace of the event it was made for (the fan-out's span for that event).
        pending = [
            await self._notifications.send(
                key=notification.key,
                value=encode_notification(notification),
                headers=headers_for(notification.traceparent),
            )
            for notification in notifications
        ]
        await _all_acknowledged(pending)

    async def publish_notices(self, notices: Sequence[NoticeMessage]) -> None:
        # On the same topic as webhook deliveries, keyed by what they are about (an invoice's
        # notices and webhooks stay in order), each in its event's trace.
        pending = [
            await self._notifications.send(
                key=notice.key,
                value=encode_notice(notice),
                headers=headers_for(notice.traceparent),
            )
            for notice in notices
        ]
        await _all_acknowledged(pending)

    async def publish_observations(self, observations: Sequence[Observation]) -> None:
        """The chain watcher's findings: transfers and orphans to their address's partition, chain
        heads to every partition (each counts confirmations for its own addresses)."""
        pending: list[Awaitable[Any]] = []
        for observation in observations:
            match observation:
                case TransferObserved():
                    message = encode_deposit_message(TransferMessage(transfer=observation))
                    key = observation.to_address.encode()
                    pending.append(
                        await self._deposits.send(key=key, value=message, headers=inject_headers())
                    )
                case TransferOrphaned():
                    orphan = OrphanMessage(orphan=observation, noticed_at=datetime.now(UTC))
                    key = observation.to_address.encode()
                    value = encode_deposit_message(orphan)
                    pending.append(
                        await self._deposits.send(key=key, value=value, headers=inject_headers())
                    )
                case ChainHeadAdvanced():
                    head = encode_deposit_message(ChainHeadMessage(head=observation))
                    for partition in range(DEPOSITS.partitions):
                        pending.append(
                            await self._deposits.send(
                                key=b"chain-head",
                                value=head,
                                partition=partition,
                                headers=inject_headers(),
                            )
                        )
        if pending:
            await asyncio.gather(*pending)
