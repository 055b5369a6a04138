"""The Bot API's HTTP surface: `GET|POST /bot<token>/<method>`, answered as Telegram does.

Every answer is JSON: `{"ok": true, "result": ...}` (with a `description` for a few methods), or
`{"ok": false, "error_code", "description"}` with the same HTTP status, plus `parameters`
`{"retry_after"}` for 429. aiogram maps status and parameters to its exceptions
(TelegramBadRequest, TelegramRetryAfter, ...), so they must match Telegram's exactly.
Method names are case-insensitive, as in the Bot API.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from telegram_sim.errors import ApiError, not_found
from telegram_sim.methods import LARGE_REQUEST_METHODS, METHODS, Call, Described
from telegram_sim.params import Params, read_body
from telegram_sim.simulator import Simulator

SIM_KEY = web.AppKey("simulator", Simulator)

# Request bodies: a photo upload up to Telegram's 10 MB plus the form around it; the rest small.
LARGE_REQUEST_BYTES = 20 * 1024**2
SMALL_REQUEST_BYTES = 1024**2


def _answer(payload: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def error_response(exc: ApiError) -> web.Response:
    payload: dict[str, Any] = {
        "ok": False,
        "error_code": exc.error_code,
        "description": exc.description,
    }
    if exc.retry_after is not None:
        payload["parameters"] = {"retry_after": exc.retry_after}
    return _answer(payload, status=exc.error_code)


async def _call(request: web.Request) -> Any:
    sim = request.app[SIM_KEY]
    bot = sim.authenticate(request.match_info["token"])
    name = request.match_info["method"].lower()
    method = METHODS.get(name)
    if method is None:
        raise not_found()
    limit = LARGE_REQUEST_BYTES if name in LARGE_REQUEST_METHODS else SMALL_REQUEST_BYTES
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "Request Entity Too Large")
    params: Params = dict(request.query)
    if request.method == "POST":
        await read_body(request.headers, request.content, limit, params)
    fault = bot.take_fault(name)
    if fault is not None:
        raise ApiError(fault.error_code, fault.description, fault.retry_after)
    return await method(Call(sim, bot, params))


async def handle(request: web.Request) -> web.Response:
    try:
        result = await _call(request)
    except ApiError as exc:
        return error_response(exc)
    if isinstance(result, Described):
        return _answer({"ok": True, "result": result.result, "description": result.description})
    return _answer({"ok": True, "result": result})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/bot{token}/{method}", handle)
    app.router.add_post("/bot{token}/{method}", handle)
