from __future__ import annotations

import pytest

from app.adapters.tron.store import MemoryWatcherStore
from tests.component.chain.chain_store_contract import WatcherStoreContract

pytestmark = pytest.mark.component


class TestMemoryWatcherStore(WatcherStoreContract):
    @pytest.fixture
    def store(self) -> MemoryWatcherStore:
        return MemoryWatcherStore()
