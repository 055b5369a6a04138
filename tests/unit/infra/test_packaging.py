"""What the worker reads from its own package at run time is in the package (pip install .).

The Docker image installs the project as a wheel; a data file left out of it is found in a
development checkout and missing in the image (the payment page's templates once were).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def test_every_template_the_worker_reads_is_package_data() -> None:
    """The payment page's and the dashboard's templates, and the dashboard's static files."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["web"]
    packaged = {path for pattern in patterns for path in (ROOT / "web").glob(pattern)}
    read = {
        path
        for folder in ("templates", "static")
        for path in (ROOT / "web" / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert read and read <= packaged, sorted(read - packaged)
