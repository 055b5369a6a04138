"""Publishing what the agents decided: domain events and follow-up commands, acknowledged.

Nothing a message caused is left unacknowledged when its offset commits: inside an agent's
``AckPipeline`` (app/runtime/pipelining.py) the sends are handed to the pipeline, which acknowledges
the message only once Kafka has acknowledged them all; anywhere else these functions await the
broker's acknowledgement themselves. Events are
keyed by their aggregate id (an aggregate's events stay in order on one partition) and travel as
their own JSON: the bytes integrators read are the bytes the domain produced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import Counter

from app.domain.commands import InvoiceCommand
from app.domain.events import DomainEvent
from app.faust_app import topics
from app.runtime.codecs import DepositMessage, encode_deposit_message, encode_invoice_command
from app.runtime.pipelining import defer_acknowledgement
from app.runtime.topics import DEPOSITS, DOMAIN_EVENTS, INVOICE_COMMANDS

EVENTS_PUBLISHED = Counter(
    "checkout_domain_events_published", "Domain events published", ["event_type"]
)


async def _all_acknowledged(pending: Sequence[Awaitable[Any]]) -> None:
    if pending and not defer_acknowledgement(pending):
        await asyncio.gather(*pending)


async def publish_events(events: Iterable[DomainEvent]) -> None:
    topic = topics[DOMAIN_EVENTS.name]
    pending = []
    for event in events:
        pending.append(
            await topic.send(
                key=event.aggregate_id.encode(), value=event.model_dump_json().encode()
            )
        )
        EVENTS_PUBLISHED.labels(event_type=event.event_type).inc()
    await _all_acknowledged(pending)


async def send_invoice_commands(commands: Iterable[InvoiceCommand]) -> None:
    topic = topics[INVOICE_COMMANDS.name]
    pending = [
        await topic.send(key=command.aggregate_id.encode(), value=encode_invoice_command(command))
        for command in commands
    ]
    await _all_acknowledged(pending)


async def send_invoice_command(
    command: InvoiceCommand, reply_to: Mapping[str, str] | None = None
) -> None:
    delivered = await topics[INVOICE_COMMANDS.name].send(
        key=command.aggregate_id.encode(), value=encode_invoice_command(command, reply_to)
    )
    await delivered


async def send_deposit_message(deposit_address: str, message: DepositMessage) -> None:
    delivered = await topics[DEPOSITS.name].send(
        key=deposit_address.encode(), value=encode_deposit_message(message)
    )
    await _all_acknowledged([delivered])
