"""The merchant and customer views on aiohttp's test client, over the worker's real services
with in-memory ports (tests/support/fakes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.adapters.webhooks.ssrf import UrlPolicy
from app.services.live_view import MAINNET_USDT_CONTRACT
from app.settings import Settings
from tests.support.fakes import LocalRouting, MemoryWorld, memory_world
from web.auth import Authenticator
from web.errors import error_middleware
from web.invoice_list import InvoiceListApi
from web.merchant_api import MerchantApi
from web.public import LiveStreamSettings, PublicEndpoints
from web.view_fallback import ViewFallback
from web.webhooks_api import WebhookApi

SHOP = {"Authorization": "Bearer ck_shop_key"}
OTHER = {"Authorization": "Bearer ck_other_key"}
FAST = LiveStreamSettings(heartbeat=5.0, keepalive=0.2, linger=0.2)


@pytest.fixture
def world() -> MemoryWorld:
    return memory_world()


def web_app(world: MemoryWorld) -> web.Application:
    """The views the worker serves, wired as app/bootstrap.py wires them."""
    services, ports = world.services, world.ports
    settings = Settings()
    routing = LocalRouting()
    auth = Authenticator(ports.merchants)
    fallback = ViewFallback(
        ports.tables.invoices,
        routing,
        table=ports.tables.invoices.name,
        token_contract=MAINNET_USDT_CONTRACT,
    )
    app = web.Application(middlewares=[error_middleware])
    for views in (
        MerchantApi(
            auth,
            services.invoice_creation,
            services.merchant_invoices,
            ports.settlement_records,
            routing,
            settings=settings,
            invoice_table=ports.tables.invoices.name,
            settlement_table=ports.tables.settlements.name,
        ),
        InvoiceListApi(auth, ports.invoice_summaries),
        WebhookApi(
            auth,
            services.webhook_endpoints,
            url_policy=UrlPolicy(require_https=True, allow_loopback=False),
        ),
        PublicEndpoints(ports.live_views, fallback=fallback, settings=FAST),
        fallback,
    ):
        views.add_routes(app.router)
    return app


@pytest.fixture
async def client(world: MemoryWorld) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(web_app(world))) as test_client:
        yield test_client
