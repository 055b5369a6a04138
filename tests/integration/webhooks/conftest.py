from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.platform import Platform, running_platform

# Retries compressed from days to seconds: 8 retries over about 10 s, and an endpoint that fails
# for 8 s without a success is disabled. Loopback receivers are allowed (development setting).
WEBHOOK_TEST_SETTINGS = {
    "WEBHOOK_ALLOW_LOOPBACK": "true",
    "WEBHOOK_RETRY_SCHEDULE": "0.3,0.3,0.5,1,1,2,2,3",
    "WEBHOOK_DISABLE_AFTER": "8",
    "WEBHOOK_TIMEOUT": "3",
    "WEBHOOK_POLL_INTERVAL": "0.2",
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, infrastructure: None) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("platform"), **WEBHOOK_TEST_SETTINGS) as running:
        yield running
