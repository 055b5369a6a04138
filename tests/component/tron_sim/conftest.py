"""The simulator's aiohttp application in-process, in manual mode, on a clock the test controls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from tronpy.keys import PrivateKey

from tron_sim.app import SimSettings, create_app
from tron_sim.chain import Chain
from tron_sim.http_api import CHAIN_KEY

START_MS = 1_700_000_000_000


class FakeClock:
    """Milliseconds that move only when a test says so."""

    def __init__(self, now: int = START_MS) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


@dataclass
class Sim:
    client: TestClient[Any, Any]
    chain: Chain
    clock: FakeClock

    async def call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self.client.post(path, json=body or {})
        assert response.status == 200, await response.text()
        return await response.json()

    async def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return await self.call(f"/sim/{path}", body)

    async def control_error(self, path: str, body: dict[str, Any]) -> Any:
        response = await self.client.post(f"/sim/{path}", json=body)
        assert response.status == 400, await response.text()
        return await response.json()

    async def mine(self, blocks: int = 1) -> Any:
        self.clock.advance(3_000 * blocks)
        return await self.control("mine", {"blocks": blocks})


async def start_sim(settings: SimSettings, clock: FakeClock) -> Sim:
    app = create_app(settings)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return Sim(client=client, chain=app[CHAIN_KEY], clock=clock)


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    clock = FakeClock()
    running = await start_sim(SimSettings(block_interval=0, clock=clock), clock)
    yield running
    await running.client.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "chain"


@dataclass
class Wallet:
    key: PrivateKey
    address: str  # T…
    hex: str  # 41…


def new_wallet() -> Wallet:
    key = PrivateKey.random()
    return Wallet(
        key=key,
        address=key.public_key.to_base58check_address(),
        hex=key.public_key.to_hex_address(),
    )


@pytest.fixture
async def funded(sim: Sim) -> Wallet:
    wallet = new_wallet()
    await sim.control("fund", {"address": wallet.address, "trx": "100", "usdt": "50"})
    return wallet
