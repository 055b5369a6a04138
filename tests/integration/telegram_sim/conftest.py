"""One stand-in process for the package, reset before each test; aiogram Bots pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from tests.support.telegram_sim import FAST_WEBHOOK_RETRIES, RunningTelegramSim, telegram_sim

TOKEN = "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
USERNAME = "checkout_test_bot"
CHAT_ID = 5_550_001


@pytest.fixture(scope="package")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTelegramSim]:
    log_path = tmp_path_factory.mktemp("telegram-sim") / "telegram-sim.log"
    args = ("--bot", f"{TOKEN}={USERNAME}", "--webhook-timeout", "2", *FAST_WEBHOOK_RETRIES)
    with telegram_sim(log_path, *args) as sim:
        yield sim


@pytest.fixture
def sim(stand_in: RunningTelegramSim) -> RunningTelegramSim:
    stand_in.reset()
    return stand_in


class LoopbackSession(AiohttpSession):
    """aiogram's own session, closed without its 250 ms wait for TLS connections to end:
    the stand-in is plain HTTP on loopback, and the wait would add seconds to the module."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def make_bot(sim: RunningTelegramSim, token: str = TOKEN) -> Bot:
    return Bot(token, session=LoopbackSession(api=TelegramAPIServer.from_base(sim.url)))


@pytest.fixture
async def bot(sim: RunningTelegramSim) -> AsyncIterator[Bot]:
    bot = make_bot(sim)
    yield bot
    await bot.session.close()
