"""Merchants and API keys in PostgreSQL, and the operator command that creates them."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from decimal import Decimal

import aiopg
import pytest

from app.adapters.postgres.merchants import PostgresMerchantStore
from app.domain.errors import InvalidFeePercentage
from app.settings import Settings
from tests.support.processes import REPO_ROOT, VENV_BIN

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]


@pytest.fixture
async def store() -> AsyncIterator[PostgresMerchantStore]:
    pool = await aiopg.create_pool(Settings.from_env().database_url, minsize=1, maxsize=2)
    try:
        yield PostgresMerchantStore(pool)
    finally:
        pool.close()
        await pool.wait_closed()


async def test_a_key_authenticates_its_merchant_only(store: PostgresMerchantStore) -> None:
    shop = await store.create_merchant("Shop A", fee_percentage="2.5", confirmation_override=3)
    other = await store.create_merchant("Shop B")

    merchant = await store.authenticate(shop.api_key)
    assert merchant is not None
    assert merchant.merchant_id == shop.merchant.merchant_id
    assert merchant.fee_percentage == Decimal("2.50")
    assert merchant.confirmation_override == 3
    assert (await store.authenticate(other.api_key)).merchant_id == other.merchant.merchant_id  # type: ignore[union-attr]
    assert (await store.get(other.merchant.merchant_id)).fee_percentage == Decimal("1.00")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "transform",
    [
        lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"),  # wrong secret
        lambda key: key.replace("ck_", "xx_"),  # wrong prefix
        lambda key: "ck_0000000000000000_" + key.split("_", 2)[2],  # unknown key id
        lambda key: "",
        lambda key: "ck_",
    ],
)
async def test_a_wrong_key_authenticates_nobody(
    store: PostgresMerchantStore, transform: object
) -> None:
    issued = await store.create_merchant("Shop C")
    assert await store.authenticate(transform(issued.api_key)) is None  # type: ignore[operator]


async def test_a_revoked_key_stops_working(store: PostgresMerchantStore) -> None:
    issued = await store.create_merchant("Shop D")
    assert await store.revoke_keys(issued.merchant.merchant_id) == 1
    fresh = PostgresMerchantStore(store._pool)  # a worker without a cached authentication
    assert await fresh.authenticate(issued.api_key) is None


async def test_bad_fee_is_refused_and_nothing_is_stored(store: PostgresMerchantStore) -> None:
    with pytest.raises(InvalidFeePercentage):
        await store.create_merchant("Shop E", fee_percentage="101")


def test_create_merchant_command_prints_json_with_an_api_key() -> None:
    result = subprocess.run(
        [
            str(VENV_BIN / "checkout"),
            "create-merchant",
            "--name",
            "CLI Shop",
            "--fee-percentage",
            "0.5",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["merchant_id"].startswith("mer_")
    assert body["api_key"].startswith("ck_")
    assert body["fee_percentage"] == "0.5"


def test_create_merchant_command_names_a_bad_fee() -> None:
    result = subprocess.run(
        [
            str(VENV_BIN / "checkout"),
            "create-merchant",
            "--name",
            "CLI Shop",
            "--fee-percentage",
            "1.005",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert result.returncode == 2
    assert "fee_percentage must have at most 2 decimals" in result.stderr
    assert result.stdout == ""
