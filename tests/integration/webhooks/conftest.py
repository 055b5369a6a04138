from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.platform import Platform, running_platform

# Retries compressed from days to seconds: 8 retries over about 15 s, and an endpoint that fails
# for 11 s without a success is disabled. As in production, a delivery must fail for good
# before its endpoint is disabled (a disabled endpoint's deliveries wait, they do not fail): the
# 8th attempt comes at most 8.5 s after the first (7.1 s +20 % jitter), the 9th at least 12.1 s
# after it (15.1 s -20 %), so only the 9th can disable. With a last delay of 3 s the two ranges
# overlapped and the endpoint was sometimes disabled before its last retry.
# Loopback receivers are allowed (development setting).
WEBHOOK_TEST_SETTINGS = {
    "WEBHOOK_ALLOW_LOOPBACK": "true",
    "WEBHOOK_RETRY_SCHEDULE": "0.3,0.3,0.5,1,1,2,2,8",
    "WEBHOOK_DISABLE_AFTER": "11",
    "WEBHOOK_TIMEOUT": "3",
    "WEBHOOK_POLL_INTERVAL": "0.2",
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, infrastructure: None) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("platform"), **WEBHOOK_TEST_SETTINGS) as running:
        yield running
