"""Asking the invoice agent: an HTTP request sends a command and waits for the owner's answer.

The command goes to ``checkout.invoice-commands`` with a reply address (this worker's Redis
channel, app/adapters/redis/replies.py); the invoice agent answers once the invoice's events are
acknowledged by Kafka, so an answered command is durable. A refusal comes back by its error's
class name (and code) and is raised here as that class again; the web layer decides its status.

While the worker cannot hear its reply channel (Redis unreachable), the invoice agent's answer to
a create cannot reach it, though the invoice is created all the same: the request then asks the
worker owning the invoice for it (``find_created_with``; web/owner_invoices.py) and answers with
it. The command's invoice id is new to that command (or held by its Idempotency-Key), so an
invoice under that id is the one the command created. Other commands wait for their answer: an
invoice found afterwards does not say whether a cancel or a resolution was applied or refused.

Upgrading from the release before this answer format (whose answers carried an HTTP status): a
new web worker reads an old agent's refusal by its code; an old web worker cannot read a new
agent's refusal and answers 500 — the command itself is applied or refused correctly either way.
Restart every worker of a platform together for that upgrade.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from app.adapters.redis.replies import CommandReplies, ReplyTimeout
from app.domain.commands import CreateInvoice, InvoiceCommand
from app.domain.errors import CheckoutError, restore_error
from app.domain.invoice import Invoice
from app.services.errors import CommandTimeout


class InvoiceCommandFailed(Exception):
    """The invoice agent failed on a command (a bug or a malformed message, dead-lettered)."""


class CommandSender(Protocol):
    async def send_invoice_command(
        self, command: InvoiceCommand, reply_to: dict[str, str] | None = None
    ) -> None: ...


def answer_invoice(invoice: Invoice) -> dict[str, Any]:
    return {"ok": True, "invoice": invoice.to_dict()}


def answer_refusal(error: CheckoutError) -> dict[str, Any]:
    """A refusal for the caller, by class: the web layer decides what status it is."""
    return {
        "ok": False,
        "error": {
            "class": type(error).__name__,
            "code": error.code,
            "message": error.message,
            "param": error.param,
        },
    }


def answer_failure() -> dict[str, Any]:
    return {"ok": False, "error": None}


# The invoice as the worker owning it has it; None when it has none or cannot be asked.
FindInvoice = Callable[[str], Awaitable[Invoice | None]]


class AskInvoiceAgent:
    """``InvoiceCommandGateway`` (app/services/ports.py) over Kafka and the Redis reply channel."""

    def __init__(self, commands: CommandSender, replies: CommandReplies, timeout: float) -> None:
        self._commands = commands
        self._replies = replies
        self._timeout = timeout
        self._find: FindInvoice | None = None

    def find_created_with(self, find: FindInvoice) -> None:
        """How a create is answered when its answer cannot come (the module says when)."""
        self._find = find

    async def ask(self, command: InvoiceCommand) -> Invoice:
        reply_to, answer = self._replies.new_request()
        otherwise = None
        if isinstance(command, CreateInvoice) and self._find is not None:
            find, invoice_id = self._find, command.invoice_id

            async def otherwise() -> dict[str, Any] | None:
                created = await find(invoice_id)
                return None if created is None else answer_invoice(created)

        try:
            await self._commands.send_invoice_command(command, reply_to)
            reply = await self._replies.wait(reply_to, answer, self._timeout, otherwise=otherwise)
        except ReplyTimeout:
            raise CommandTimeout(
                "the invoice service did not answer in time; the command may still apply: retry "
                "it (with the same Idempotency-Key when creating)"
            ) from None
        return read_answer(reply, command)


def read_answer(reply: Mapping[str, Any], command: InvoiceCommand) -> Invoice:
    """The invoice the agent answered with, or its refusal raised as the class it was."""
    if reply["ok"]:
        return Invoice.from_dict(reply["invoice"])
    error = reply["error"]
    if error is None:
        raise InvoiceCommandFailed(
            f"the invoice agent failed on {type(command).__name__} {command.command_id}; "
            "it is on the dead-letter topic"
        )
    # Answers of the previous release name no class: their code finds it.
    raise restore_error(
        str(error.get("class", "")), error["message"], error["param"], code=error.get("code")
    )
