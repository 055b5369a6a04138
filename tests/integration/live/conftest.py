"""Shared fixtures of the live status integration tests: a real Redis, unique invoices."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from app.adapters.redis.live_views import LiveInvoiceViews
from app.services.live_view import MAINNET_USDT_CONTRACT

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def invoice_id() -> str:
    return f"inv_live_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def views(redis_client: aioredis.Redis) -> AsyncIterator[LiveInvoiceViews]:
    live = LiveInvoiceViews(redis_client, token_contract=MAINNET_USDT_CONTRACT)
    try:
        yield live
    finally:
        await live.aclose()
