"""Launching the SMS stand-in (``python -m sms_sim``) on a free loopback port, and a small client
for its ``/sim/`` control API."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import REPO_ROOT, free_port

ACCOUNT_SID = "AC" + "5ec0" * 8
AUTH_TOKEN = "sms-sim-test-token"
FROM_NUMBER = "+15005550006"


class SmsSimDidNotStart(RuntimeError):
    """The stand-in exited or did not answer /sim/status in time; its log is attached."""


def launch_sms_sim(log_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m sms_sim`` for ``ACCOUNT_SID``/``AUTH_TOKEN`` sending from
    ``FROM_NUMBER`` (``extra`` may add more ``--from``) and return it with its URL once it
    answers."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "sms_sim",
        "--port",
        str(port),
        "--account-sid",
        ACCOUNT_SID,
        "--auth-token",
        AUTH_TOKEN,
        "--from",
        FROM_NUMBER,
        *extra,
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=log_file)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SmsSimDidNotStart(f"the SMS stand-in exited: {log_path.read_text()}")
        try:
            httpx.get(url + "/sim/status", timeout=2).raise_for_status()
        except httpx.TransportError:
            time.sleep(0.05)
        else:
            return process, url
    process.terminate()
    process.wait(timeout=30)
    raise SmsSimDidNotStart(f"the SMS stand-in did not start: {log_path.read_text()}")


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
