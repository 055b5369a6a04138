"""Webhook delivery: each pending update POSTed to the bot's URL, in order, until it is taken.

Telegram treats any non-2xx answer, a refused connection or a timeout as "not delivered": the
update stays pending, the failure shows in getWebhookInfo (last_error_date, last_error_message)
and it is tried again later, with growing pauses. One update is in flight per bot at a time, so
the bot sees its updates in order. The pauses are settings because a test cannot wait the
minutes Telegram does (`--webhook-retry-delay`, `--webhook-max-retry-delay`).

A 2xx answer may carry a method call ("reply into webhook"); Telegram runs it and ignores its
result, and so does this.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import ClientError, ClientOSError, ClientResponse, ClientSession, ClientTimeout

from telegram_sim.errors import SimError
from telegram_sim.model import BotAccount, Webhook, now
from telegram_sim.params import Params, read_body

log = logging.getLogger("telegram_sim.webhooks")

ReplyHandler = Callable[[BotAccount, Params], Awaitable[None]]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
# A reply may upload a photo: the same bound as a sendPhoto request.
MAX_REPLY_BYTES = 20 * 1024**2


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    retry_delay: float  # pause after the first failure, seconds
    max_retry_delay: float  # pauses double up to this
    timeout: float  # how long one POST may take, answer included

    def pause(self, failures: int) -> float:
        return float(min(self.retry_delay * 2 ** max(failures - 1, 0), self.max_retry_delay))


class WebhookDeliverer:
    """The task that feeds one bot's webhook; stopped when the webhook is deleted or replaced."""

    def __init__(
        self,
        bot: BotAccount,
        webhook: Webhook,
        http: ClientSession,
        policy: DeliveryPolicy,
        on_reply: ReplyHandler,
    ) -> None:
        self.bot = bot
        self.webhook = webhook
        self.http = http
        self.policy = policy
        self.on_reply = on_reply
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"webhook-{self.bot.username}")
        self._task.add_done_callback(self._report_crash)

    def _report_crash(self, task: asyncio.Task[None]) -> None:
        """A bug in delivery must not stop webhooks silently: the log says what to do."""
        if task.cancelled() or task.exception() is None:
            return
        log.error(
            "webhook delivery for @%s stopped on an unexpected error; updates stay pending. "
            "Call setWebhook again to restart it, and report the traceback.",
            self.bot.username,
            exc_info=task.exception(),
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        failures = 0
        queue = self.bot.updates
        while not queue.closed:
            pending = queue.head(1)
            if not pending:
                await queue.wait_changed(None)
                continue
            update = pending[0]
            problem = await self._deliver(update)
            if problem is None:
                queue.confirm_through(update["update_id"])
                failures = 0
                continue
            failures += 1
            self.webhook.last_error_date = now()
            self.webhook.last_error_message = problem
            log.info(
                "webhook of @%s: update %d not delivered (%s); next try in %.2f s",
                self.bot.username,
                update["update_id"],
                problem,
                self.policy.pause(failures),
            )
            await asyncio.sleep(self.policy.pause(failures))

    async def _deliver(self, update: dict[str, Any]) -> str | None:
        """None when the webhook took the update, else Telegram's wording of the failure."""
        headers = {"Content-Type": "application/json"}
        if self.webhook.secret_token:
            headers[SECRET_HEADER] = self.webhook.secret_token
        try:
            async with self.http.post(
                self.webhook.url,
                data=orjson.dumps(update),
                headers=headers,
                timeout=ClientTimeout(total=self.policy.timeout),
                allow_redirects=False,
            ) as response:
                if not 200 <= response.status < 300:
                    return f"Wrong response from the webhook: {response.status} {response.reason}"
                await self._run_reply(response)
        except TimeoutError:
            return "Read timeout expired"
        except ClientOSError as exc:
            if exc.errno == errno.ECONNREFUSED:
                return "Connection refused"
            return f"Connection error: {exc.strerror or exc}"
        except ClientError as exc:
            return f"Connection error: {type(exc).__name__}: {exc}"
        return None

    async def _run_reply(self, response: ClientResponse) -> None:
        params: Params = {}
        try:
            await read_body(response.headers, response.content, MAX_REPLY_BYTES, params)
        except SimError as exc:
            log.info("webhook of @%s answered an unreadable reply: %s", self.bot.username, exc)
            return
        if params.get("method"):
            await self.on_reply(self.bot, params)
