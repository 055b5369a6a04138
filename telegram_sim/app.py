"""Wiring: the simulator, its HTTP client for webhooks, and the aiohttp application."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import ClientSession, web
from aiohttp.typedefs import Handler

from telegram_sim import bot_api, control
from telegram_sim.errors import ApiError
from telegram_sim.methods import run_webhook_reply
from telegram_sim.model import BotAccount
from telegram_sim.params import Params
from telegram_sim.simulator import SimSettings, Simulator


@web.middleware
async def telegram_shaped_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A path or verb the Bot API does not serve answers in its JSON too, never aiohttp's text.

    aiogram decodes every answer as JSON; a plain-text 404 would surface as a decode error
    instead of the TelegramNotFound the real API gives.
    """
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if request.path.startswith("/sim/") or exc.status < 400:
            raise
        reason = "Not Found" if exc.status in {404, 405} else exc.reason
        return bot_api.error_response(ApiError(404 if exc.status == 405 else exc.status, reason))


def create_app(settings: SimSettings) -> web.Application:
    sim = Simulator(settings)

    async def reply(bot: BotAccount, params: Params) -> None:
        await run_webhook_reply(sim, bot, params)

    sim.reply_handler = reply
    # Bodies are read from the stream with per-method limits (bot_api.py, control.py).
    app = web.Application(middlewares=[telegram_shaped_errors])
    app[bot_api.SIM_KEY] = sim

    async def http_client(app: web.Application) -> AsyncIterator[None]:
        async with ClientSession() as http:
            sim.http = http
            yield
            await sim.close()
            sim.http = None

    async def release_waiters(app: web.Application) -> None:
        # Runs before the server waits for open requests: long polls answer [] at once
        # instead of holding the shutdown for up to their timeout.
        await sim.close()

    app.cleanup_ctx.append(http_client)
    app.on_shutdown.append(release_waiters)
    bot_api.add_routes(app)
    control.add_routes(app)
    return app
