"""The unit tier is pure: no unit test imports Faust, let alone builds a Faust app.

Tests of Faust's internals and of anything wired on a Faust app belong to the component tier
(tests/component/runtime, tests/component/agents); this keeps ``make test-unit`` fast and free of
the worker's machinery.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("faust", "mode")


def unit_test_modules() -> list[str]:
    return sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "tests" / "unit").rglob("*.py")
        if path.name != "__init__.py"
    )


def test_no_unit_test_module_imports_faust() -> None:
    modules = unit_test_modules()
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"the unit tier imports {result.stdout.strip()}"
