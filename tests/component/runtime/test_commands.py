"""Reading the invoice agent's answer: the invoice, or the refusal raised as the class it was."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.errors import InvalidTransition, InvoiceNotFound
from app.runtime.commands import InvoiceCommandFailed, answer_refusal, read_answer
from tests.unit.domain.factories import cancel

pytestmark = pytest.mark.component


def test_a_refusal_comes_back_as_its_own_class_with_its_message_and_param() -> None:
    refusal = InvalidTransition("invoice", "inv_1", "paid", "cancelled", [])
    with pytest.raises(InvalidTransition) as raised:
        read_answer(answer_refusal(refusal), cancel())
    assert (raised.value.message, raised.value.param) == (refusal.message, "status")


def test_an_answer_of_the_previous_release_is_read_by_its_code() -> None:
    # Before this layout the agent sent an HTTP status and no class name.
    old: dict[str, Any] = {
        "ok": False,
        "status": 404,
        "error": {
            "type": "not_found_error",
            "code": "invoice_not_found",
            "message": "no invoice inv_1",
            "param": "invoice_id",
        },
    }
    with pytest.raises(InvoiceNotFound):
        read_answer(old, cancel())


def test_an_agent_that_failed_on_the_command_is_an_error_not_a_refusal() -> None:
    with pytest.raises(InvoiceCommandFailed, match="dead-letter topic"):
        read_answer({"ok": False, "error": None}, cancel())
