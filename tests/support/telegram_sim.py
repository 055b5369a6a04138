"""Launching the Telegram Bot API stand-in on a free loopback port, and a client for its /sim/.

The bot under test talks to the stand-in's Bot API (`{url}/bot<token>/<method>`) like it would
to api.telegram.org; the test talks to `/sim/` through TelegramSim to play the user and to read
what the bot sent.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import StandInDidNotStart, launch_stand_in

# Retries a test can wait for; Telegram's own pauses are minutes.
FAST_WEBHOOK_RETRIES = ("--webhook-retry-delay", "0.05", "--webhook-max-retry-delay", "0.2")


class TelegramSimDidNotStart(StandInDidNotStart):
    """The stand-in exited or did not answer /sim/status in time; its log is attached."""


def launch_telegram_sim(log_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m telegram_sim`` and return it with its URL once it answers."""
    return launch_stand_in("telegram_sim", log_path, list(extra), error=TelegramSimDidNotStart)


class TelegramSim:
    """A synchronous client of the stand-in's /sim/ control API."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code != 200:
            raise AssertionError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def status(self) -> Any:
        return self._call("GET", "/sim/status")

    def reset(self) -> Any:
        return self._call("POST", "/sim/reset")

    def add_bot(self, token: str, username: str, first_name: str | None = None) -> Any:
        body: dict[str, Any] = {"token": token, "username": username}
        if first_name is not None:
            body["first_name"] = first_name
        return self._call("POST", "/sim/bots", body)

    def bot(self, token: str) -> Any:
        """The bot's state: pending_updates, webhook, commands, chats, planned faults."""
        return self._call("GET", f"/sim/bots/{token}")

    def say(self, token: str, chat_id: int, text: str, **user: str) -> Any:
        """The user `chat_id` types `text` to the bot; `user` may give first_name, username."""
        body = {"chat_id": chat_id, "text": text, **user}
        return self._call("POST", f"/sim/bots/{token}/messages", body)

    def press(self, token: str, chat_id: int, message_id: int, data: str) -> Any:
        """The user presses the inline button with callback_data `data` under a bot message."""
        body = {"chat_id": chat_id, "message_id": message_id, "data": data}
        return self._call("POST", f"/sim/bots/{token}/callbacks", body)

    def callback_queries(self, token: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/sim/bots/{token}/callbacks")["callback_queries"])

    def sent(self, token: str, chat_id: int) -> list[dict[str, Any]]:
        """What the bot sent to the chat, oldest first."""
        return list(self._call("GET", f"/sim/bots/{token}/chats/{chat_id}/sent")["sent"])

    def wait_sent(
        self, token: str, chat_id: int, count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Wait until the bot has sent at least `count` messages to the chat; return them all."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.sent(token, chat_id)
            if len(messages) >= count:
                return messages
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the bot sent {len(messages)} of {count} messages to chat {chat_id} "
                    f"within {timeout:g} s: {messages}"
                )
            time.sleep(0.05)

    def block(self, token: str, chat_id: int) -> Any:
        return self._call("POST", f"/sim/bots/{token}/chats/{chat_id}/block")

    def unblock(self, token: str, chat_id: int) -> Any:
        return self._call("POST", f"/sim/bots/{token}/chats/{chat_id}/unblock")

    def fault(
        self,
        token: str,
        method: str,
        error_code: int,
        *,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> Any:
        """The next `times` calls of `method` ("*" for any) fail with this error."""
        body: dict[str, Any] = {
            "token": token,
            "method": method,
            "error_code": error_code,
            "times": times,
        }
        if description is not None:
            body["description"] = description
        if retry_after is not None:
            body["retry_after"] = retry_after
        return self._call("POST", "/sim/faults", body)


class RunningTelegramSim(TelegramSim):
    """A stand-in process started by ``telegram_sim()``, with its process and log."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
        super().__init__(url)
        self.process = process
        self.log_path = log_path


@contextmanager
def telegram_sim(log_path: Path, *extra: str) -> Iterator[RunningTelegramSim]:
    """A stand-in process for the block's length, e.g. a module fixture:

    ``with telegram_sim(tmp / "telegram.log", "--bot", "1:A=x_bot") as sim: yield sim``
    """
    process, url = launch_telegram_sim(log_path, *extra)
    sim = RunningTelegramSim(url, process, log_path)
    try:
        yield sim
    finally:
        sim.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
