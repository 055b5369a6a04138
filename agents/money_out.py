"""Money out on the leader: the driver's tick, and the signer's answers recorded by every worker.

The driver (app/services/money_out_driver.py) runs on Faust's leader only, once a second, so one
worker at a time builds, broadcasts and follows the platform's outgoing transactions; its state
is in PostgreSQL, so a new leader carries on. The signer answers on ``checkout.signatures``;
every worker records the answers of the partitions it owns (idempotently, by request id), and
the driver reads them from there, whichever worker leads.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import faust
from prometheus_client import Counter

from app.runtime.dead_letters import DeadLetters
from app.runtime.pipelining import AckPipeline
from app.runtime.retry import retry_transient
from app.services.money_out_driver import MoneyOutDriver
from app.services.ports import MoneyOutStore, SigningAnswerRow

logger = logging.getLogger(__name__)

DRIVER: Final = "drive_money_out"
ANSWERS: Final = "signing_answer_agent"
TICK_FAILURES = Counter(
    "checkout_money_out_tick_failures",
    "Ticks of the money-out driver that failed before the end (the next tick starts again)",
    ["error"],
)


class SigningAnswers:
    """Records each answer of the signer; one that is not an answer goes to the dead letters."""

    def __init__(self, store: MoneyOutStore, dead_letters: DeadLetters) -> None:
        self._store = store
        self._dead_letters = dead_letters

    async def handle(self, event: faust.EventT) -> None:
        try:
            answer = parse_answer(event.value)
            await retry_transient(lambda: self._store.record_answer(answer), what="signing answer")
        except Exception as exc:
            await self._dead_letters.send(event, agent=ANSWERS, error=exc)


def parse_answer(value: Any) -> SigningAnswerRow:
    if not isinstance(value, dict):
        raise ValueError("a signing answer is a JSON object")
    fields = {name: value.get(name) for name in ("txid", "signature", "refused", "message")}
    request_id = value.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 200:
        raise ValueError("a signing answer names its request_id")
    for name, item in fields.items():
        if item is not None and (not isinstance(item, str) or len(item) > 2000 or "\x00" in item):
            raise ValueError(f"{name} must be a string of at most 2000 characters")
    if (fields["signature"] is None) == (fields["refused"] is None):
        raise ValueError("a signing answer holds a signature or a refusal")
    return SigningAnswerRow(request_id=request_id, **fields)


def register(
    app: faust.App,
    driver: MoneyOutDriver,
    answers_topic: faust.TopicT,
    answers: SigningAnswers,
    hold: Callable[[], Awaitable[None]],
    interval: float,
) -> None:
    async def drive_money_out() -> None:
        try:
            await driver.tick()
        except Exception as exc:  # the state is in PostgreSQL: the next tick starts from there
            TICK_FAILURES.labels(type(exc).__name__).inc()
            logger.exception("money-out tick failed; the next tick carries on")

    app.timer(interval=interval, on_leader=True, name=f"{__name__}.{DRIVER}")(drive_money_out)

    async def signing_answer_agent(stream: faust.StreamT[Any]) -> None:
        """Records the signer's answers for the money-out driver."""
        await AckPipeline(stream, ANSWERS, answers.handle, hold=hold).run()

    app.agent(answers_topic, name=f"{__name__}.{ANSWERS}", concurrency=1)(signing_answer_agent)
