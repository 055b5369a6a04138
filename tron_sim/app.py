"""Wiring: chain, block producer, block log and the aiohttp application, in one place."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from tron_sim import control, http_api
from tron_sim.chain import Chain, ChainConfig
from tron_sim.execution import FeeSchedule
from tron_sim.producer import BlockProducer
from tron_sim.store import BlockLog


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimSettings:
    block_interval: float = 3.0  # seconds; 0 = manual mode
    solidify_depth: int = 18
    energy_fee: int = 100
    transaction_fee: int = 1_000
    free_net_limit: int = 600
    data_dir: Path | None = None
    paused: bool = False
    clock: Callable[[], int] = field(default=wall_clock_ms)


def build_chain(settings: SimSettings) -> tuple[Chain, BlockLog | None]:
    chain = Chain(
        ChainConfig(
            solidify_depth=settings.solidify_depth,
            fees=FeeSchedule(
                energy_fee=settings.energy_fee,
                transaction_fee=settings.transaction_fee,
                free_net_limit=settings.free_net_limit,
            ),
        ),
        settings.clock,
    )
    store = None
    if settings.data_dir is not None:
        store = BlockLog(settings.data_dir)
        store.load_into(chain)
        store.open()
        chain.sink = store
    return chain, store


def create_app(settings: SimSettings) -> web.Application:
    chain, store = build_chain(settings)
    producer = BlockProducer(chain, settings.block_interval, paused=settings.paused)
    app = web.Application(client_max_size=64 * 1024**2)
    app[http_api.CHAIN_KEY] = chain
    app[control.PRODUCER_KEY] = producer

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        producer.start()
        yield
        await producer.stop()
        if store is not None:
            store.close()

    app.cleanup_ctx.append(lifecycle)
    http_api.add_routes(app)
    control.add_routes(app)
    return app
