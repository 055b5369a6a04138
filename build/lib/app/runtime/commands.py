"""Asking the invoice agent: an HTTP request sends a command and waits for the owner's answer.

The command goes to ``checkout.invoice-commands`` with a reply address (this worker's Redis
channel, app/adapters/redis/replies.py); the invoice agent answers once the invoice's events are
acknowledged by Kafka, so an answered command is durable. A refusal comes back by its error's
class name (and code) and is raised here as that class again; the web layer decides its status.

Upgrading from the release before this answer format (whose answers carried an HTTP status): a
new web worker reads an old agent's refusal by its code; an old web worker cannot read a new
agent's refusal and answers 500 — the command itself is applied or refused correctly either way.
Restart every worker of a platform together for that upgrade.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from app.adapters.redis.replies import CommandReplies, ReplyTimeout
from app.domain.commands import InvoiceCommand
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


class AskInvoiceAgent:
    """``InvoiceCommandGateway`` (app/services/ports.py) over Kafka and the Redis reply channel."""

    def __init__(self, commands: CommandSender, replies: CommandReplies, timeout: float) -> None:
        self._commands = commands
        self._replies = replies
        self._timeout = timeout

    async def ask(self, command: InvoiceCommand) -> Invoice:
        reply_to, answer = self._replies.new_request()
        try:
            await self._commands.send_invoice_command(command, reply_to)
            reply = await self._replies.wait(reply_to, answer, self._timeout)
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
