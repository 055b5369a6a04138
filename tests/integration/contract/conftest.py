from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.platform import Platform, running_platform


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, infrastructure: None) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("platform")) as running:
        yield running
