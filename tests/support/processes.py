"""Start and stop real processes (workers, simulators) from tests, and wait on them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = REPO_ROOT / ".local" / "test-logs"
VENV_BIN = Path(sys.executable).parent

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StandInDidNotStart(RuntimeError):
    """A stand-in (the Tron node, Telegram's Bot API, Twilio) exited or did not answer
    ``/sim/status`` in time; its log is attached."""


def launch_stand_in(
    module: str,
    log_path: Path,
    args: list[str],
    *,
    error: type[StandInDidNotStart] = StandInDidNotStart,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m <module> --port <free port> <args>`` and return it with its URL once its
    ``/sim/status`` answers (30 s at most; then it is stopped and ``error`` raised)."""
    port = free_port()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--port", str(port), *args],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise error(f"{module} exited: {log_path.read_text()}")
        try:
            httpx.get(url + "/sim/status", timeout=2).raise_for_status()
        except httpx.TransportError:
            time.sleep(0.05)
        else:
            return process, url
    process.terminate()
    process.wait(timeout=30)
    raise error(f"{module} did not start: {log_path.read_text()}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def eventually(
    probe: Callable[[], T | None], *, timeout: float, what: str, every: float = 0.2
) -> T:
    """Poll until ``probe`` returns something other than None/False; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except Exception as exc:  # a probe that raises is "not yet"; kept for the failure message
            last_error = exc
        else:
            if value is not None and value is not False:
                return value
        time.sleep(every)
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what}; last error: {last_error!r}"
    )


class ManagedProcess:
    """A child process with its output in a log file that is shown when a test fails."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], cwd: Path) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self._terminated = False
        self.log_path = LOG_DIR / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM, once) without waiting: ``stop`` waits."""
        if self.alive() and not self._terminated:
            self._terminated = True
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int:
        if self.alive():
            self.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self._log.close()


def wait_http_ok(url: str, process: ManagedProcess, *, timeout: float = 60.0) -> httpx.Response:
    def probe() -> httpx.Response | None:
        if not process.alive():
            raise AssertionError(f"{process.name} exited early:\n{process.log_tail()}")
        response = httpx.get(url, timeout=2.0)
        return response if response.status_code == 200 else None

    try:
        return eventually(probe, timeout=timeout, what=f"{url} to answer 200")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- {process.name} log ---\n{process.log_tail()}") from None


class WorkerProcess(ManagedProcess):
    """A ``checkout worker``: its public URL and its operators' listener (/metrics, /readyz)."""

    def __init__(self, name: str, env: Mapping[str, str]) -> None:
        super().__init__(name, [str(VENV_BIN / "checkout"), "worker", "-l", "info"], env, REPO_ROOT)
        self.url = f"http://127.0.0.1:{env['WEB_PORT']}"
        self.internal_url = f"http://127.0.0.1:{env['INTERNAL_PORT']}"


@contextmanager
def worker(env: Mapping[str, str], *, name: str = "worker") -> Iterator[WorkerProcess]:
    """A real ``checkout worker`` process; yields once its /healthz answers. Its operators'
    listener gets a free port unless ``env`` names one (``INTERNAL_PORT``)."""
    with worker_processes([(name, env)]) as procs:
        yield procs[0]


@contextmanager
def worker_processes(
    named_envs: list[tuple[str, Mapping[str, str]]],
) -> Iterator[list[WorkerProcess]]:
    """Several ``checkout worker`` processes started at once (each takes seconds to import and
    build; one after the other they would add up in every test that starts a platform); yields
    once every /healthz answers, and stops them all at once."""
    procs: list[WorkerProcess] = []
    try:
        for name, env in named_envs:
            procs.append(WorkerProcess(name, {"INTERNAL_PORT": str(free_port()), **env}))
        for proc in procs:
            wait_http_ok(f"{proc.url}/healthz", proc)
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.stop()
