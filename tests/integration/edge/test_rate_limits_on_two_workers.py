"""Rate limits on the real stack: budgets in Redis shared by two workers.

The platform runs with RATE_LIMIT_INVOICE_CREATE=5/minute and RATE_LIMIT_IP=20/minute, and
trusts the test client (127.0.0.1) as a proxy, so each test speaks for its own client address
in X-Forwarded-For and no test spends another's budget.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.platform import Platform, running_platform

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(
        tmp_path_factory.mktemp("limits"),
        RATE_LIMIT_INVOICE_CREATE="5/minute",
        RATE_LIMIT_IP="20/minute",
        TRUSTED_PROXIES="127.0.0.1",
    ) as running:
        yield running


def test_the_sixth_invoice_in_a_minute_is_refused_whichever_worker_answers(
    platform: Platform,
) -> None:
    client = {"X-Forwarded-For": "198.51.100.10"}
    answers = []
    for number in range(6):
        url = platform.worker_urls[number % 2]  # alternate: the budget is the key's, not a worker's
        answers.append(
            httpx.post(
                f"{url}/api/v1/invoices",
                json={"amount": "1"},
                headers={**platform.headers(), **client},
                timeout=30,
            )
        )
    assert [a.status_code for a in answers] == [201] * 5 + [429]
    assert [a.headers["RateLimit-Remaining"] for a in answers[:5]] == ["4", "3", "2", "1", "0"]
    limited = answers[-1]
    assert limited.headers["RateLimit-Limit"] == "5"
    assert 1 <= int(limited.headers["Retry-After"]) <= 12
    error = limited.json()["error"]
    assert (error["code"], error["param"]) == ("rate_limit_exceeded", "invoice_create")
    # Reads are a budget of their own.
    read = httpx.get(
        f"{platform.worker_urls[1]}/api/v1/invoices",
        headers={**platform.headers(), **client},
        timeout=30,
    )
    assert read.status_code == 200
    assert int(read.headers["RateLimit-Limit"]) == 1_000_000


def test_the_public_invoice_endpoint_is_limited_by_client_address(platform: Platform) -> None:
    # The other merchant's key: the shop's invoice budget went on the test above.
    invoice = httpx.post(
        f"{platform.url}/api/v1/invoices",
        json={"amount": "1"},
        headers=platform.headers(platform.other_api_key),
        timeout=30,
    ).json()
    path = f"/api/v1/public/invoice/{invoice['id']}"
    statuses = [
        httpx.get(
            f"{platform.worker_urls[n % 2]}{path}",
            headers={"X-Forwarded-For": "203.0.113.20"},
            timeout=30,
        )
        for n in range(21)
    ]
    assert [s.status_code for s in statuses] == [200] * 20 + [429]
    limited = statuses[-1]
    assert limited.json()["error"]["param"] == "ip"
    assert int(limited.headers["Retry-After"]) >= 1
    assert statuses[0].headers["RateLimit-Limit"] == "20"
    # Another customer is not affected.
    other = httpx.get(
        f"{platform.url}{path}", headers={"X-Forwarded-For": "203.0.113.21"}, timeout=30
    )
    assert other.status_code == 200
    # Liveness is never limited.
    health = httpx.get(
        f"{platform.url}/healthz", headers={"X-Forwarded-For": "203.0.113.20"}, timeout=30
    )
    assert health.status_code == 200
