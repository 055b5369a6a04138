"""A background loop runs with the worker, stops before what it uses is closed, and a loop that
dies crashes the worker instead of leaving it running without it."""

from __future__ import annotations

import asyncio

import pytest

from app.runtime.background import Background

pytestmark = pytest.mark.component


async def test_the_loop_is_cancelled_before_stop_closes_what_it_uses() -> None:
    log: list[str] = []

    async def start() -> None:
        log.append("start")

    async def run() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            log.append("run ended")

    async def stop() -> None:
        log.append("stop")

    service = Background("test", start=start, run=run, stop=stop)
    await service.start()
    await asyncio.sleep(0)
    await service.stop()
    assert log == ["start", "run ended", "stop"]
    assert not service.crashed


async def test_a_loop_that_dies_crashes_the_service() -> None:
    async def run() -> None:
        raise RuntimeError("the dispatcher lost its mind")

    service = Background("test", run=run)
    await service.start()
    for _ in range(20):
        await asyncio.sleep(0.01)
        if service.crashed:
            break
    assert service.crashed
    await service.stop()
