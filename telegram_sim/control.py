"""The stand-in's own control API under `/sim/`: a test plays the user and inspects the bot.

Telegram has nothing like it; the platform must never call it. A test adds bots, types
messages and presses buttons as a user, blocks the bot, reads what the bot sent to a chat
(text as the user sees it and as the bot wrote it, photos with their bytes), plans failures
of Bot API methods, and resets everything. JSON in and out; a bad field answers 400
`{"error", "field"}`, an unknown bot or chat 404.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from telegram_sim.bot_api import SIM_KEY
from telegram_sim.errors import ApiError, BadControlRequest, UnknownResource
from telegram_sim.methods import MAX_TEXT, METHODS
from telegram_sim.model import Fault
from telegram_sim.params import read_capped
from telegram_sim.simulator import Simulator, token_problem, username_problem

MAX_BODY_BYTES = 64 * 1024
MAX_CHAT_ID = 2**52  # Telegram's user ids fit in 52 bits
MAX_FAULT_TIMES = 10_000
MAX_RETRY_AFTER = 3_600
USER_USERNAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")
DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
    502: "Bad Gateway",
}

Body = dict[str, Any]


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


async def _body(request: web.Request) -> Body:
    try:
        raw = await read_capped(request.content, MAX_BODY_BYTES)
    except ApiError:
        raise BadControlRequest("body", f"is larger than {MAX_BODY_BYTES} bytes") from None
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadControlRequest("body", "is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadControlRequest("body", "must be a JSON object")
    return data


def _integer(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)  # path parameters arrive as text
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadControlRequest(field, f"must be an integer from {low} to {high}")
    return value


def _string(body: Body, field: str, *, max_length: int, required: bool = True) -> str | None:
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= max_length:
        raise BadControlRequest(field, f"must be a string of 1 to {max_length} characters")
    return value


def _chat_id(value: Any) -> int:
    return _integer(value, "chat_id", 1, MAX_CHAT_ID)


def _user_names(body: Body) -> tuple[str | None, str | None]:
    first_name = _string(body, "first_name", max_length=64, required=False)
    username = body.get("username")
    if username is not None and (
        not isinstance(username, str) or USER_USERNAME_RE.fullmatch(username) is None
    ):
        raise BadControlRequest("username", "must be 4-32 letters, digits or underscores")
    return first_name, username


# ----- handlers


async def status(request: web.Request, sim: Simulator) -> Any:
    return sim.status()


async def add_bot(request: web.Request, sim: Simulator) -> Any:
    body = await _body(request)
    token, username = body.get("token"), body.get("username")
    if problem := token_problem(token):
        raise BadControlRequest("token", problem)
    if problem := username_problem(username):
        raise BadControlRequest("username", problem)
    first_name = _string(body, "first_name", max_length=64, required=False)
    return sim.add_bot(str(token), str(username), first_name).summary()


async def bot_info(request: web.Request, sim: Simulator) -> Any:
    return sim.bot(request.match_info["token"]).summary()


async def user_message(request: web.Request, sim: Simulator) -> Any:
    bot = sim.bot(request.match_info["token"])
    body = await _body(request)
    chat_id = _chat_id(body.get("chat_id"))
    text = _string(body, "text", max_length=MAX_TEXT)
    first_name, username = _user_names(body)
    return sim.user_says(bot, chat_id, str(text), first_name, username)


async def user_callback(request: web.Request, sim: Simulator) -> Any:
    bot = sim.bot(request.match_info["token"])
    body = await _body(request)
    chat_id = _chat_id(body.get("chat_id"))
    message_id = _integer(body.get("message_id"), "message_id", 1, 2**31)
    data = _string(body, "data", max_length=64)
    return sim.user_presses(bot, chat_id, message_id, str(data))


async def callback_queries(request: web.Request, sim: Simulator) -> Any:
    bot = sim.bot(request.match_info["token"])
    return {
        "callback_queries": [
            {
                "id": q.id,
                "chat_id": q.chat_id,
                "message_id": q.message_id,
                "data": q.data,
                "answer": q.answer,
            }
            for q in bot.callback_queries.values()
        ]
    }


async def sent(request: web.Request, sim: Simulator) -> Any:
    """What the bot sent to a chat, oldest first; nothing yet for a chat that does not exist."""
    bot = sim.bot(request.match_info["token"])
    chat_id = _chat_id(request.match_info["chat_id"])
    chat = bot.chats.get(chat_id)
    messages = [m.sim_json() for m in chat.sent] if chat else []
    return {"chat_id": chat_id, "blocked": bool(chat and chat.blocked), "sent": messages}


def _blocking(blocked: bool) -> Callable[[web.Request, Simulator], Awaitable[Any]]:
    async def handler(request: web.Request, sim: Simulator) -> Any:
        bot = sim.bot(request.match_info["token"])
        chat = sim.chat(bot, _chat_id(request.match_info["chat_id"]))
        chat.blocked = blocked
        return {"chat_id": chat.user.id, "blocked": chat.blocked}

    return handler


async def add_fault(request: web.Request, sim: Simulator) -> Any:
    body = await _body(request)
    bot = sim.bot(str(body.get("token")))
    method = body.get("method")
    if not isinstance(method, str) or (method != "*" and method.lower() not in METHODS):
        raise BadControlRequest("method", f"must be '*' or one of {sorted(METHODS)}")
    error_code = _integer(body.get("error_code"), "error_code", 400, 599)
    retry_after = body.get("retry_after")
    if retry_after is not None:
        retry_after = _integer(retry_after, "retry_after", 1, MAX_RETRY_AFTER)
    elif error_code == 429:
        retry_after = 1  # aiogram raises TelegramRetryAfter only when parameters carry it
    template = DEFAULT_DESCRIPTIONS.get(error_code, "Error")
    description = _string(body, "description", max_length=1024, required=False)
    description = description or template.format(retry_after=retry_after)
    times = _integer(body.get("times", 1), "times", 1, MAX_FAULT_TIMES)
    fault = Fault(error_code, description, retry_after, times)
    key = method.lower()
    bot.faults.setdefault(key, deque()).append(fault)
    return {"token": bot.token, "method": key, "planned": bot.summary()["faults"][key]}


async def reset(request: web.Request, sim: Simulator) -> Any:
    await sim.reset()
    return sim.status()


Handler = Callable[[web.Request, Simulator], Awaitable[Any]]


def _wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            payload = await handler(request, request.app[SIM_KEY])
        except BadControlRequest as exc:
            return _json({"error": str(exc), "field": exc.field}, status=400)
        except UnknownResource as exc:
            return _json({"error": str(exc), "field": exc.field}, status=404)
        return _json(payload)

    return handle


def add_routes(app: web.Application) -> None:
    bot = "/sim/bots/{token}"
    chat = bot + "/chats/{chat_id}"
    app.router.add_get("/sim/status", _wrap(status))
    app.router.add_post("/sim/bots", _wrap(add_bot))
    app.router.add_get(bot, _wrap(bot_info))
    app.router.add_post(bot + "/messages", _wrap(user_message))
    app.router.add_post(bot + "/callbacks", _wrap(user_callback))
    app.router.add_get(bot + "/callbacks", _wrap(callback_queries))
    app.router.add_get(chat + "/sent", _wrap(sent))
    app.router.add_post(chat + "/block", _wrap(_blocking(True)))
    app.router.add_post(chat + "/unblock", _wrap(_blocking(False)))
    app.router.add_post("/sim/faults", _wrap(add_fault))
    app.router.add_post("/sim/reset", _wrap(reset))
