"""A throwaway PostgreSQL server of the tests' own, for tests that stop and start it.

Stopping the shared server would break everything else running against it; this one lives in a
temporary folder on a free port and is gone after the test.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import free_port


def _bindir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not candidates:
        raise AssertionError(
            "PostgreSQL server binaries are missing: run scripts/infra.sh up postgres"
        )
    return candidates[-1].parent


def pg_tool(name: str) -> Path:
    """A PostgreSQL program of the newest installed major version (pg_ctl, psql, …)."""
    return _bindir() / name


def _as_owner(argv: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass
class ThrowawayPostgres:
    directory: Path
    port: int
    # Server settings on top of the defaults, passed as ``-c name=value`` at every start.
    settings: Mapping[str, str] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_owner([str(_bindir() / "pg_ctl"), "-D", str(self.directory / "data"), *args]),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.directory} -c fsync=off"
        for name, value in self.settings.items():
            options += " -c " + shlex.quote(f"{name}={value}")
        self._pg_ctl("-l", str(self.directory / "postgres.log"), "-w", "-o", options, "start")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop")


@contextmanager
def throwaway_postgres(settings: Mapping[str, str] | None = None) -> Iterator[ThrowawayPostgres]:
    """A fresh cluster; ``settings`` are server settings for it (e.g. WAL archiving)."""
    directory = Path(tempfile.mkdtemp(prefix="checkout-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    server = ThrowawayPostgres(directory, free_port(), dict(settings or {}))
    subprocess.run(
        _as_owner(
            [
                str(_bindir() / "initdb"),
                "-D",
                str(directory / "data"),
                "-U",
                "postgres",
                "-A",
                "trust",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped by the test
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)
