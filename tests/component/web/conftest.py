"""The merchant and customer views on aiohttp's test client, wired as app/bootstrap.py wires
them, over the worker's real services with in-memory ports (tests/support/fakes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.bootstrap import install_views
from app.settings import Settings
from tests.support.fakes import LocalRouting, MemoryWorld, memory_world
from web import MIDDLEWARES
from web.public import LiveStreamSettings

SHOP = {"Authorization": "Bearer ck_shop_key"}
OTHER = {"Authorization": "Bearer ck_other_key"}
FAST = LiveStreamSettings(heartbeat=5.0, keepalive=0.2, linger=0.2)


@pytest.fixture
def world() -> MemoryWorld:
    return memory_world()


@pytest.fixture
async def client(world: MemoryWorld) -> AsyncIterator[TestClient]:
    app = web.Application(middlewares=MIDDLEWARES)
    install_views(app, world.services, LocalRouting(), Settings(), live=FAST)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client
