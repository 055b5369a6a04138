"""The payment agent: ``checkout.deposits`` → payments, counted to finality.

Each message — a deposit address registered by the invoice agent, a transfer to it, its
orphaning, a chain head — is decoded and handed to app/services/deposits.py, which keeps the
address's account in the ``deposits`` table and publishes payment events and invoice commands.
A refused or malformed message goes to the dead-letter topic with its error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import faust

from app.domain.observations import ChainHeadAdvanced
from app.runtime.codecs import (
    ChainHeadMessage,
    DepositMessage,
    DepositRegistered,
    OrphanMessage,
    TransferMessage,
    decode_deposit_message,
)
from app.runtime.dead_letters import DeadLetters
from app.runtime.pipelining import AckPipeline
from app.runtime.retry import retry_transient
from app.services.deposits import DepositProcessing

NAME: Final = "payment_agent"


class PaymentAgent:
    def __init__(self, deposits: DepositProcessing, dead_letters: DeadLetters) -> None:
        self._deposits = deposits
        self._dead_letters = dead_letters

    async def handle(self, event: faust.EventT) -> ChainHeadAdvanced | None:
        """Apply one message; a chain head applied is returned, for ``acknowledged``."""
        partition = event.message.partition
        try:
            message = decode_deposit_message(event.value)
            await retry_transient(lambda: self._apply(message, partition), what="deposit message")
        except Exception as exc:  # refused or malformed: kept with its error, never lost
            await self._dead_letters.send(event, agent=NAME, error=exc)
            return None
        return message.head if isinstance(message, ChainHeadMessage) else None

    async def acknowledged(self, event: faust.EventT, head: ChainHeadAdvanced | None) -> None:
        """Kafka holds everything the message and those before it caused: a head counts now."""
        if head is not None:
            self._deposits.chain_head_acknowledged(head, event.message.partition)

    async def _apply(self, message: DepositMessage, partition: int) -> None:
        match message:
            case DepositRegistered():
                self._deposits.register(message)
            case TransferMessage():
                await self._deposits.on_transfer(message.transfer, partition)
            case OrphanMessage():
                await self._deposits.on_orphan(message.orphan, message.noticed_at, partition)
            case ChainHeadMessage():
                await self._deposits.on_chain_head(message.head, partition)


def register(
    app: faust.App,
    topic: faust.TopicT,
    agent: PaymentAgent,
    hold: Callable[[], Awaitable[None]],
) -> faust.types.AgentT:
    async def payment_agent(stream: faust.StreamT[Any]) -> None:
        """Turns transfers to deposit addresses into payments and counts their confirmations."""
        # Decided one by one; each acknowledged once its events and commands are.
        await AckPipeline(
            stream, NAME, agent.handle, on_acknowledged=agent.acknowledged, hold=hold
        ).run()

    return app.agent(topic, name=f"{__name__}.{NAME}", concurrency=1)(payment_agent)
