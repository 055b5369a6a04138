"""Merchants and API keys in PostgreSQL, and the operator command that creates them."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import aiopg
import pytest

from app.adapters.auth.tokens import TokenIssuer
from app.adapters.postgres.api_keys import PostgresApiKeys
from app.adapters.postgres.merchants import PostgresMerchantAccounts, PostgresMerchantStore
from app.adapters.postgres.users import PostgresUsers
from app.domain.access import ALL_SCOPES
from app.domain.errors import InvalidFeePercentage
from app.services.access import AccessControl, InvalidApiKey
from app.services.credentials import SecretDigests
from app.settings import Settings
from tests.support.processes import REPO_ROOT, VENV_BIN

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]


class NoNews:
    """Access changes that are never heard: nothing is cached, every check reads PostgreSQL."""

    healthy = False

    async def announce(self, subject: str) -> None:
        pass


@dataclass
class Stores:
    merchants: PostgresMerchantStore
    access: AccessControl


@pytest.fixture
async def store() -> AsyncIterator[Stores]:
    settings = Settings.from_env()
    pool = await aiopg.create_pool(settings.database_url, minsize=1, maxsize=2)
    digests = SecretDigests(settings.api_key_pepper)
    access = AccessControl(
        PostgresApiKeys(pool, digests),
        PostgresUsers(pool),
        PostgresMerchantAccounts(pool),
        TokenIssuer(settings.jwt_secret.encode()),
        digests,
        NoNews(),
    )
    try:
        yield Stores(PostgresMerchantStore(pool, digests), access)
    finally:
        pool.close()
        await pool.wait_closed()


async def test_a_key_authenticates_its_merchant_only(store: Stores) -> None:
    shop = await store.merchants.create_merchant(
        "Shop A", fee_percentage="2.5", confirmation_override=3
    )
    other = await store.merchants.create_merchant("Shop B")

    principal = await store.access.authenticate(shop.api_key)
    assert principal.merchant is not None
    assert principal.merchant.merchant_id == shop.merchant.merchant_id
    assert principal.merchant.fee_percentage == Decimal("2.50")
    assert principal.merchant.confirmation_override == 3
    assert principal.scopes == ALL_SCOPES  # the first key has every scope
    assert (await store.access.authenticate(other.api_key)).merchant_id == (
        other.merchant.merchant_id
    )
    assert (await store.merchants.get(other.merchant.merchant_id)).fee_percentage == Decimal(  # type: ignore[union-attr]
        "1.00"
    )


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
async def test_a_wrong_key_authenticates_nobody(store: Stores, transform: object) -> None:
    issued = await store.merchants.create_merchant("Shop C")
    with pytest.raises(InvalidApiKey):
        await store.access.authenticate(transform(issued.api_key))  # type: ignore[operator]


async def test_a_revoked_key_stops_working(store: Stores) -> None:
    issued = await store.merchants.create_merchant("Shop D")
    assert await store.merchants.revoke_keys(issued.merchant.merchant_id) == 1
    with pytest.raises(InvalidApiKey):
        await store.access.authenticate(issued.api_key)


async def test_bad_fee_is_refused_and_nothing_is_stored(store: Stores) -> None:
    with pytest.raises(InvalidFeePercentage):
        await store.merchants.create_merchant("Shop E", fee_percentage="101")


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
