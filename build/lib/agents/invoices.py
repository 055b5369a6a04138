"""The invoice agent: ``checkout.invoice-commands`` → the one writer of invoices.

Each command (from the HTTP API, the payment agent or the expiry timer) is applied by
app/services/invoice_commands.py; the HTTP caller waiting for it is answered once the invoice's
events are acknowledged by Kafka (app/runtime/pipelining.py), so an answered command is durable.
A refusal answers the caller; one from inside the platform needs an operator and goes to the
dead-letter topic, like a malformed message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

import faust

from app.domain.errors import CheckoutError
from app.runtime.codecs import decode_invoice_command, reply_address
from app.runtime.commands import answer_failure, answer_invoice, answer_refusal
from app.runtime.dead_letters import DeadLetters
from app.runtime.pipelining import AckPipeline
from app.runtime.retry import retry_transient
from app.services.invoice_commands import InvoiceCommands

NAME: Final = "invoice_agent"


class Replies(Protocol):
    async def send_reply(self, reply_to: dict[str, str], answer: dict[str, Any]) -> None: ...


class InvoiceAgent:
    def __init__(
        self, commands: InvoiceCommands, dead_letters: DeadLetters, replies: Replies
    ) -> None:
        self._commands = commands
        self._dead_letters = dead_letters
        self._replies = replies

    async def handle(self, event: faust.EventT) -> dict[str, Any]:
        """Apply one command; the answer is for the HTTP caller, when there is one."""
        asked = reply_address(event.value) is not None
        try:
            command = decode_invoice_command(event.value)
            invoice = await retry_transient(
                lambda: self._commands.apply(command), what="invoice command"
            )
        except CheckoutError as exc:
            if not asked:
                await self._dead_letters.send(event, agent=NAME, error=exc)
            return answer_refusal(exc)
        except Exception as exc:  # a malformed message or a bug: kept, with its error, never lost
            await self._dead_letters.send(event, agent=NAME, error=exc)
            return answer_failure()
        return answer_invoice(invoice)

    async def answer(self, event: faust.EventT, answer: dict[str, Any]) -> None:
        reply_to = reply_address(event.value)
        if reply_to is not None:
            await self._replies.send_reply(reply_to, answer)


def register(
    app: faust.App,
    topic: faust.TopicT,
    agent: InvoiceAgent,
    hold: Callable[[], Awaitable[None]],
) -> faust.types.AgentT:
    async def invoice_agent(stream: faust.StreamT[Any]) -> None:
        """Applies invoice commands and answers the HTTP requests waiting for them."""
        # Decided one by one; the caller is answered once the invoice's events are acknowledged.
        await AckPipeline(stream, NAME, agent.handle, on_acknowledged=agent.answer, hold=hold).run()

    return app.agent(topic, name=f"{__name__}.{NAME}", concurrency=1)(invoice_agent)
