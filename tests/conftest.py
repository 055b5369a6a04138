"""Fixtures and rules shared by every tier.

Every test belongs to exactly one tier (unit, component, integration, fuzz, browser, faults)
through its marker, so ``make test-unit`` and friends select what they promise. Integration tests
need the real Kafka, PostgreSQL and Redis that ``make test`` starts; when one is missing they fail
with the command to run, they are never skipped.
"""

from __future__ import annotations

import pytest

from tests.support.processes import port_open

TIERS = ("unit", "component", "integration", "fuzz", "browser", "faults")
SERVICES = {"Kafka": 9092, "PostgreSQL": 5432, "Redis": 6379, "SMTP": 1025}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tiers = [tier for tier in TIERS if item.get_closest_marker(tier)]
        if len(tiers) != 1:
            raise pytest.UsageError(
                f"{item.nodeid} must be marked with exactly one tier of {TIERS}, has {tiers}"
            )


@pytest.fixture(scope="session")
def infrastructure() -> None:
    """The local Kafka, PostgreSQL and Redis are up (``make test`` starts them)."""
    missing = [
        f"{name} on 127.0.0.1:{port}" for name, port in SERVICES.items() if not port_open(port)
    ]
    if missing:
        pytest.fail(
            f"not reachable: {', '.join(missing)}; start them with `scripts/infra.sh up` "
            "(make test does this)",
            pytrace=False,
        )
