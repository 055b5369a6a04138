"""Launching the SMS stand-in (``python -m sms_sim``) on a free loopback port, and a small client
for its ``/sim/`` control API."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import StandInDidNotStart, launch_stand_in

ACCOUNT_SID = "AC" + "5ec0" * 8
AUTH_TOKEN = "sms-sim-test-token"
FROM_NUMBER = "+15005550006"


class SmsSimDidNotStart(StandInDidNotStart):
    """The stand-in exited or did not answer /sim/status in time; its log is attached."""


def launch_sms_sim(log_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m sms_sim`` for ``ACCOUNT_SID``/``AUTH_TOKEN`` sending from
    ``FROM_NUMBER`` (``extra`` may add more ``--from``) and return it with its URL once it
    answers."""
    args = ["--account-sid", ACCOUNT_SID, "--auth-token", AUTH_TOKEN, "--from", FROM_NUMBER]
    return launch_stand_in("sms_sim", log_path, [*args, *extra], error=SmsSimDidNotStart)


class SmsSimClient:
    """The stand-in's control API: what it took, and failures planned for the next sends."""

    def __init__(self, url: str) -> None:
        self.url = url

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/sim/status")

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        params = {"to": to} if to is not None else {}
        messages: list[dict[str, Any]] = self._call("GET", "/sim/messages", params=params)[
            "messages"
        ]
        return messages

    def wait_messages(self, to: str, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
        """The messages to ``to`` once there are at least ``count``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(to)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{len(found)} SMS to {to} after {timeout:g} s, expected {count}: {found}"
                )
            time.sleep(0.05)

    def fault(self, status: int | None, times: int = 1, delay: float = 0.0) -> None:
        """The next ``times`` sends fail with ``status`` (429, 500 or 503) after ``delay`` s."""
        self._call("POST", "/sim/faults", json={"status": status, "times": times, "delay": delay})

    def reset(self) -> None:
        self._call("POST", "/sim/reset")

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = httpx.request(method, self.url + path, timeout=10, **kwargs)
        assert response.status_code == 200, f"{method} {path}: {response.text}"
        body: dict[str, Any] = response.json()
        return body
