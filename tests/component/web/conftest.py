"""The merchant and customer views on aiohttp's test client, wired as app/bootstrap.py wires
them, over the worker's real services with in-memory ports (tests/support/fakes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.bootstrap import install_edge, install_views
from app.runtime.worker_signatures import WorkerSignatures
from tests.support.fakes import (
    OTHER_API_KEY,
    SHOP_API_KEY,
    LocalRouting,
    MemoryWorld,
    memory_world,
)
from web.public import LiveStreamSettings

SHOP = {"Authorization": f"Bearer {SHOP_API_KEY}"}
OTHER = {"Authorization": f"Bearer {OTHER_API_KEY}"}
FAST = LiveStreamSettings(heartbeat=5.0, keepalive=0.2, linger=0.2)


@pytest.fixture
def world() -> MemoryWorld:
    return memory_world()


@pytest.fixture
async def client(world: MemoryWorld) -> AsyncIterator[TestClient]:
    app = web.Application()
    settings = world.settings
    limits = install_edge(app, world.services, settings, WorkerSignatures(settings.internal_secret))
    install_views(app, world.services, LocalRouting(), settings, live=FAST, limits=limits)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client
