"""The sustained-load benchmark runs end to end on the real stack and reports every figure.

A tiny run (a few invoices a second for a few seconds, blocks every half second so the 12- and
19-confirmation invoices finish soon): it must complete, see every measured invoice paid on its
page, settled and notified, and print its table. No duration is asserted: the figures are the
benchmark's business, on a quiet machine (`make bench`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_bench_load_completes_and_reports() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "bench/bench_load.py",
            *("--rate", "4", "--duration", "5", "--warmup", "1", "--runs", "1"),
            *("--block-interval", "0.5", "--timeout", "120", "--py-spy"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "20 measured" in result.stdout, output[-4000:]
    for figure in (
        "block → PaymentDetected p99",
        "block → WebSocket paid p99",
        "block → SettlementCreated p99",
        "block → InvoicePaid webhook p99",
        "lag max (messages)",
        "cores: workers",
        "peak RSS MiB: workers",
        "raw produce → consume p99",
        "domain events per invoice",
        "py-spy:",  # the profile summary (or why there is none)
    ):
        assert figure in result.stdout, f"{figure!r} missing from:\n{result.stdout}"
