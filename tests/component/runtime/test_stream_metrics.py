"""Two platforms built in one process share Faust's stream metrics instead of clashing."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.bootstrap import build
from app.settings import Settings

pytestmark = pytest.mark.component


def test_a_second_build_in_the_same_process_reuses_the_stream_metrics(tmp_path: Path) -> None:
    first = build(Settings(data_dir=tmp_path / "a", store="memory://"))
    second = build(Settings(data_dir=tmp_path / "b", store="memory://"))
    assert first.app.monitor._metrics is second.app.monitor._metrics
