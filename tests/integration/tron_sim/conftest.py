"""A real simulator process on a free loopback port, in manual mode, driven over HTTP."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.tron_sim import launch_simulator


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
    process, url = launch_simulator(log_path, *extra)
    return SimProcess(url=url, process=process, log_path=log_path)


def stop_simulator(sim: SimProcess) -> int:
    sim.process.terminate()
    return sim.process.wait(timeout=30)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    process = start_simulator(tmp_path_factory.mktemp("tron-sim") / "sim.log")
    yield process
    stop_simulator(process)
