"""Launching a Tron node simulator process on a free loopback port, in manual mode."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.processes import REPO_ROOT, free_port


class SimulatorDidNotStart(RuntimeError):
    """The simulator process exited or did not answer /sim/status in time; its log is attached."""


def launch_simulator(log_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m tron_sim --manual`` and return it with its URL once it answers."""
    port = free_port()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "tron_sim", "--port", str(port), "--manual", *extra],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SimulatorDidNotStart(f"the simulator exited: {log_path.read_text()}")
        try:
            httpx.get(url + "/sim/status", timeout=2).raise_for_status()
        except httpx.TransportError:
            time.sleep(0.05)
        else:
            return process, url
    process.terminate()
    process.wait(timeout=30)
    raise SimulatorDidNotStart(f"the simulator did not start: {log_path.read_text()}")
