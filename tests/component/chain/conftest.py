from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from app.adapters.tron.node import TronNode
from app.runtime.retry import RetryPolicy
from tests.component.chain.chain_fake_node import FakeChain, Published


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
def fake_chain() -> FakeChain:
    return FakeChain()


@pytest.fixture
async def node_url(fake_chain: FakeChain) -> AsyncIterator[str]:
    runner = web.AppRunner(fake_chain.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/"
    await runner.cleanup()


@pytest.fixture
async def node(node_url: str) -> AsyncIterator[TronNode]:
    async with TronNode(
        node_url, request_timeout=5.0, retry=RetryPolicy(attempts=4), sleep=_no_sleep
    ) as client:
        yield client


@pytest.fixture
def published() -> Published:
    return Published()
