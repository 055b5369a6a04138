"""The stand-in's own control API under ``/sim/``, for tests and for a person trying the platform:
what was sent, and failures planned for the next sends. Twilio has none of these endpoints, so
the platform must never call them."""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from sms_sim.outbox import Fault, Outbox, message_json
from sms_sim.settings import SimSettings
from sms_sim.twilio_api import FAULT_ERRORS, OUTBOX_KEY, SETTINGS_KEY, json_response

MAX_FAULT_TIMES: Final = 10_000
MAX_FAULT_DELAY: Final = 120.0


class BadRequest(Exception):
    """A control request with a bad field; answered 400 naming it."""


def _bad(problem: str) -> web.Response:
    return json_response({"error": problem}, 400)


def _status(outbox: Outbox, settings: SimSettings) -> dict[str, Any]:
    counters = outbox.counters
    return {
        "account_sid": settings.account_sid,
        "from_numbers": sorted(settings.from_numbers),
        "delivery_delay": settings.delivery_delay,
        "messages": len(outbox.messages),
        "requests": counters.requests,
        "accepted": counters.accepted,
        "rejected": counters.rejected,
        "faulted": counters.faulted,
        "fault": outbox.fault.as_json() if outbox.fault else None,
    }


async def status(request: web.Request) -> web.Response:
    return json_response(_status(request.app[OUTBOX_KEY], request.app[SETTINGS_KEY]))


async def messages(request: web.Request) -> web.Response:
    """Every message taken, oldest first, as ``GET …/Messages/{Sid}.json`` shows it, plus the
    encoding its segments were counted in; ``?to=`` keeps one recipient's."""
    outbox, settings = request.app[OUTBOX_KEY], request.app[SETTINGS_KEY]
    to = request.query.get("to")
    # An unescaped "+" in a query string means a space: ?to=+4915… typed by hand arrives so.
    if to is not None and to.startswith(" "):
        to = "+" + to[1:]
    now = settings.clock()
    listed = [
        {
            **message_json(message, now=now, delivery_delay=settings.delivery_delay),
            "encoding": message.segmentation.encoding,
        }
        for message in outbox.messages.values()
        if to is None or message.to == to
    ]
    return json_response({"messages": listed})


async def faults(request: web.Request) -> web.Response:
    """``{"status": 500|429|503, "times": n, "delay": seconds}``: the next n sends wait ``delay``
    (default 0) then fail with ``status``; without a status they are only slow. ``times`` 0
    clears the plan."""
    outbox = request.app[OUTBOX_KEY]
    try:
        outbox.fault = _fault(await _json_body(request))
    except BadRequest as exc:
        return _bad(str(exc))
    return json_response(_status(outbox, request.app[SETTINGS_KEY]))


async def reset(request: web.Request) -> web.Response:
    outbox = request.app[OUTBOX_KEY]
    outbox.reset()
    return json_response(_status(outbox, request.app[SETTINGS_KEY]))


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def _fault(body: dict[str, Any]) -> Fault | None:
    status, times, delay = body.get("status"), body.get("times", 1), body.get("delay", 0)
    if status is not None and (not isinstance(status, int) or status not in FAULT_ERRORS):
        raise BadRequest(f"status must be one of {sorted(FAULT_ERRORS)} or null")
    if isinstance(times, bool) or not isinstance(times, int) or not 0 <= times <= MAX_FAULT_TIMES:
        raise BadRequest(f"times must be an integer from 0 to {MAX_FAULT_TIMES}")
    if (
        isinstance(delay, bool)
        or not isinstance(delay, int | float)
        or not 0 <= delay <= MAX_FAULT_DELAY
    ):
        raise BadRequest(f"delay must be a number of seconds from 0 to {MAX_FAULT_DELAY:g}")
    if times == 0:
        return None
    if status is None and delay == 0:
        raise BadRequest("give a status, a delay or both")
    return Fault(status=status, delay=float(delay), times=times)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/sim/status", status)
    app.router.add_get("/sim/messages", messages)
    app.router.add_post("/sim/faults", faults)
    app.router.add_post("/sim/reset", reset)
