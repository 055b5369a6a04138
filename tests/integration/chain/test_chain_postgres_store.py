from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.adapters.postgres.chain_cursor import PostgresWatcherStore
from tests.component.chain.chain_store_contract import WatcherStoreContract, make_block

pytestmark = pytest.mark.integration


class TestPostgresWatcherStore(WatcherStoreContract):
    @pytest.fixture
    def store(self, pg_pool: Any) -> PostgresWatcherStore:
        # A platform of its own: the history is judged per CHECKOUT_APP_ID and network.
        app_id = f"contract-{uuid.uuid4().hex[:8]}"
        return PostgresWatcherStore(
            pg_pool, watcher_name="contract-test", app_id=app_id, network="sim"
        )


async def test_two_watcher_names_keep_separate_state(pg_pool: Any) -> None:
    mainnet = PostgresWatcherStore(pg_pool, watcher_name="tron-usdt-mainnet")
    nile = PostgresWatcherStore(pg_pool, watcher_name="tron-usdt-nile")
    await mainnet.init_cursor(9)
    await nile.init_cursor(99)
    await mainnet.save_block(make_block(10, transfers=2))

    assert await nile.load_cursor() == 99
    assert await nile.load_window() == []
    assert [b.number for b in await mainnet.load_window()] == [10]
