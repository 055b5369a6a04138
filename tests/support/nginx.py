"""nginx in front of test workers, configured exactly as ``make up`` configures it.

``load_balancer`` renders docker/nginx/'s templates with docker/nginx/render.py, makes a fresh
certificate with docker/nginx/local-certificate.sh, and runs Debian's nginx in the foreground on
free ports, everything in a directory of the test's own. nginx is installed the way the scripts
install it (``scripts/infra.sh up nginx``) when it is missing.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.processes import REPO_ROOT, ManagedProcess, eventually, free_port

NGINX_DIR = REPO_ROOT / "docker" / "nginx"
_ACCESS_LINE = re.compile(
    r'^(?P<client>\S+) \[[^]]+\] "(?P<request>[^"]*)" (?P<status>\d{3}) \d+ '
    r"upstream=(?P<upstream>.*?) upstream_status=(?P<upstream_status>.*?) "
    r"request_id=(?P<request_id>\S+) "
)


def nginx_binary() -> str:
    """Debian's nginx, installed by the project's own script when missing."""
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and Path(candidate).is_file():
            return candidate
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "infra.sh"), "up", "nginx"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"scripts/infra.sh up nginx failed:\n{result.stderr}"
    return shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass(frozen=True)
class AccessEntry:
    client: str
    request: str
    status: int
    upstreams: list[str]  # every worker tried, in order ("127.0.0.1:6066")
    upstream_statuses: list[str]
    request_id: str


@dataclass
class LoadBalancer:
    port: int
    http_port: int
    directory: Path
    process: ManagedProcess

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def certificate(self) -> Path:
        return self.directory / "certs" / "tls.crt"

    @property
    def access_log(self) -> Path:
        return self.directory / "logs" / "access.log"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the generated certificate and nothing else."""
        return ssl.create_default_context(cafile=str(self.certificate))

    def client(self, headers: Mapping[str, str] | None = None) -> httpx.Client:
        """An HTTPS client of the balancer that verifies its certificate."""
        return httpx.Client(
            base_url=self.url, verify=self.ssl_context(), headers=headers, timeout=30
        )

    def entries(self) -> list[AccessEntry]:
        found = []
        for line in self.access_log.read_text(errors="replace").splitlines():
            match = _ACCESS_LINE.match(line)
            if match is None:
                continue
            found.append(
                AccessEntry(
                    client=match["client"],
                    request=match["request"],
                    status=int(match["status"]),
                    upstreams=[u.strip() for u in match["upstream"].split(",")],
                    upstream_statuses=[s.strip() for s in match["upstream_status"].split(",")],
                    request_id=match["request_id"],
                )
            )
        return found

    def entry(self, request_id: str) -> AccessEntry:
        """The access-log line of a request (nginx writes it once the response is sent)."""
        return eventually(
            lambda: next((e for e in self.entries() if e.request_id == request_id), None),
            timeout=10,
            what=f"request {request_id} in {self.access_log}",
            every=0.1,
        )

    def log_tail(self, lines: int = 30) -> str:
        error_log = self.directory / "logs" / "error.log"
        text = error_log.read_text(errors="replace").splitlines() if error_log.exists() else []
        return "\n".join(text[-lines:])


def _render(template: Path, output: Path, values: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, str(NGINX_DIR / "render.py"), str(template), str(output)],
        env=values,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@contextmanager
def load_balancer(upstreams: Sequence[str], directory: Path) -> Iterator[LoadBalancer]:
    """nginx on free loopback ports in front of ``upstreams`` ("127.0.0.1:6066"), until exit."""
    nginx = nginx_binary()
    port = http_port = free_port()
    while http_port == port:
        http_port = free_port()
    for sub in ("certs", "logs", "tmp"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    cert, key = directory / "certs" / "tls.crt", directory / "certs" / "tls.key"
    made = subprocess.run(
        ["sh", str(NGINX_DIR / "local-certificate.sh"), str(cert), str(key)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    values = {
        "LB_DIR": str(directory),
        "LB_BIND": "127.0.0.1",
        "LB_PORT": str(port),
        "LB_HTTP_PORT": str(http_port),
        "LB_UPSTREAM_SERVERS": " ".join(
            f"server {address} max_fails=1 fail_timeout=10s;" for address in upstreams
        ),
        "LB_CERT": str(cert),
        "LB_KEY": str(key),
        "LB_ACCESS_LOG": str(directory / "logs" / "access.log"),
        "LB_HSTS_MAX_AGE": "0",
    }
    _render(NGINX_DIR / "templates" / "default.conf.template", directory / "default.conf", values)
    _render(NGINX_DIR / "nginx.local.conf.template", directory / "nginx.conf", values)
    args = [nginx, "-p", str(directory), "-e", str(directory / "logs" / "error.log")]
    args += ["-c", str(directory / "nginx.conf")]
    checked = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    process = ManagedProcess("nginx", [*args, "-g", "daemon off;"], {}, directory)
    balancer = LoadBalancer(port=port, http_port=http_port, directory=directory, process=process)
    try:

        def listening() -> bool:
            if not process.alive():
                raise AssertionError(f"nginx exited:\n{process.log_tail()}\n{balancer.log_tail()}")
            with socket.socket() as sock:
                sock.settimeout(0.5)
                return sock.connect_ex(("127.0.0.1", port)) == 0

        eventually(listening, timeout=20, what=f"nginx on 127.0.0.1:{port}", every=0.1)
        yield balancer
    finally:
        process.stop()
