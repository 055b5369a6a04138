"""Launching a Tron node simulator process on a free loopback port, in manual mode."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.processes import StandInDidNotStart, launch_stand_in


class SimulatorDidNotStart(StandInDidNotStart):
    """The simulator process exited or did not answer /sim/status in time; its log is attached."""


def launch_simulator(log_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m tron_sim --manual`` and return it with its URL once it answers."""
    return launch_stand_in("tron_sim", log_path, ["--manual", *extra], error=SimulatorDidNotStart)
