"""Every topic a worker consumes exists before its consumer starts, Faust's leader topic too."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.bootstrap import build, required_topics
from app.settings import Settings

pytestmark = pytest.mark.component


def test_the_leader_topic_is_created_with_ours(tmp_path: Path) -> None:
    # Left to Faust, the first assignment could miss it and elect no leader: no chain watcher.
    platform = build(Settings(data_dir=tmp_path, store="memory://", app_id="shop"))
    required = {topic.name: topic for topic in required_topics(platform.app, platform.topics)}
    leader = required["shop-__assignor-__leader"]
    assert leader.partitions == 1
    assert "crypto-checkout.domain-events" in required
