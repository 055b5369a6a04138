"""A real simulator process on a free loopback port, in manual mode, driven over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SimProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = requests.post(self.url + path, json=body or {}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def get(self, path: str) -> Any:
        response = requests.get(self.url + path, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()


def start_simulator(log_path: Path, *extra: str) -> SimProcess:
    port = free_port()
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tron_sim", "--port", str(port), "--manual", *extra],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    log_file.close()
    sim = SimProcess(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"simulator exited: {log_path.read_text()}")
        try:
            sim.get("/sim/status")
            return sim
        except requests.ConnectionError:
            time.sleep(0.05)
    stop_simulator(sim)
    raise RuntimeError(f"simulator did not start: {log_path.read_text()}")


def stop_simulator(sim: SimProcess) -> int:
    sim.process.terminate()
    return sim.process.wait(timeout=30)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    process = start_simulator(tmp_path_factory.mktemp("tron-sim") / "sim.log")
    yield process
    stop_simulator(process)
