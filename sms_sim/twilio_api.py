"""Twilio's Messages API: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` to send,
``GET …/Messages/{Sid}.json`` to read one back.

Refusals carry Twilio's error body, ``{"code", "message", "more_info", "status"}``, with the
codes Twilio uses, so a client's error handling is tested against what production answers. The
magic ``To`` numbers of Twilio's test credentials fail as they do there:
https://www.twilio.com/docs/iam/test-credentials
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from sms_sim.outbox import API_VERSION, Fault, Outbox, message_json
from sms_sim.segments import segment
from sms_sim.settings import SimSettings

log = logging.getLogger("sms_sim")

OUTBOX_KEY: Final = web.AppKey("outbox", Outbox)
SETTINGS_KEY: Final = web.AppKey("settings", SimSettings)

E164: Final = re.compile(r"\+[1-9][0-9]{6,14}")
MAX_BODY_CHARS: Final = 1600
FAULT_ERRORS: Final = {
    429: (20429, "Too Many Requests"),
    500: (20500, "An internal server error has occurred"),
    503: (20503, "Service unavailable"),
}
MAGIC_NUMBERS: Final = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable via SMS."),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the "
        "'To' number: +15005550003.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}


# Twilio writes UTF-8 as it is rather than as \u escapes.
_dumps: Final = functools.partial(json.dumps, ensure_ascii=False)


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status, dumps=_dumps)


class TwilioError(Exception):
    """Answered as Twilio's error body with ``status``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: int, message: str, **extra: Any) -> web.Response:
    payload = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
        **extra,
    }
    return json_response(payload, status)


def _not_found(request: web.Request) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {request.path} was not found")


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """``(login, password)`` of a ``Basic`` Authorization header, or None."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    login, colon, password = decoded.partition(":")
    return (login, password) if colon else None


def _authenticate(request: web.Request, settings: SimSettings) -> None:
    """Basic auth with the account's SID and token, then the account in the path."""
    credentials = _basic_credentials(request.headers.get("Authorization", ""))
    if (
        credentials is None
        or not hmac.compare_digest(credentials[0].encode(), settings.account_sid.encode())
        or not hmac.compare_digest(credentials[1].encode(), settings.auth_token.encode())
    ):
        raise TwilioError(401, 20003, "Authenticate")
    if request.match_info["account_sid"] != settings.account_sid:
        raise _not_found(request)


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _validate(settings: SimSettings, to: str, from_number: str, body: str) -> None:
    """In Twilio's order: the recipient, the sender, then the text."""
    if not to:
        raise TwilioError(400, 21604, "A 'To' phone number is required.")
    if not E164.fullmatch(to):
        raise TwilioError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    if not from_number:
        raise TwilioError(400, 21603, "A 'From' phone number is required.")
    if from_number not in settings.from_numbers:
        raise TwilioError(
            400,
            21606,
            f"The From phone number {from_number} is not a valid, SMS-capable inbound phone "
            "number or short code for your account.",
        )
    if not body:
        raise TwilioError(400, 21602, "Message body is required.")
    if len(body) > MAX_BODY_CHARS:
        raise TwilioError(
            400, 21617, "The concatenated message body exceeds the 1600 character limit."
        )
    if to in MAGIC_NUMBERS:
        raise TwilioError(400, *MAGIC_NUMBERS[to])


async def _apply_fault(fault: Fault | None, outbox: Outbox) -> None:
    if fault is None:
        return
    if fault.delay > 0:
        await asyncio.sleep(fault.delay)
    if fault.status is not None:
        outbox.counters.faulted += 1
        code, message = FAULT_ERRORS[fault.status]
        raise TwilioError(fault.status, code, message)


async def create_message(request: web.Request) -> web.Response:
    outbox, settings = request.app[OUTBOX_KEY], request.app[SETTINGS_KEY]
    outbox.counters.requests += 1
    fault = outbox.take_fault()
    # The form is read first, as a slow Twilio would have it: a client that gives up while we
    # wait has still sent its message, and we still take it.
    form = await request.post()
    await _apply_fault(fault, outbox)
    _authenticate(request, settings)
    to, from_number, body = _field(form, "To"), _field(form, "From"), _field(form, "Body")
    try:
        _validate(settings, to, from_number, body)
    except TwilioError:
        outbox.counters.rejected += 1
        raise
    message = outbox.accept(
        account_sid=settings.account_sid,
        to=to,
        from_number=from_number,
        body=body,
        segmentation=segment(body),
    )
    log.info(
        "took %s to %s (%d %s segments): %.60r",
        message.sid,
        to,
        message.segmentation.segments,
        message.segmentation.encoding,
        body,
    )
    return json_response(
        message_json(message, now=None, delivery_delay=settings.delivery_delay), 201
    )


async def fetch_message(request: web.Request) -> web.Response:
    outbox, settings = request.app[OUTBOX_KEY], request.app[SETTINGS_KEY]
    _authenticate(request, settings)
    message = outbox.messages.get(request.match_info["sid"])
    if message is None:
        raise _not_found(request)
    return json_response(
        message_json(message, now=settings.clock(), delivery_delay=settings.delivery_delay)
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def twilio_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal as Twilio's error body, aiohttp's own too (no route, a wrong method, a body
    over the size limit)."""
    try:
        return await handler(request)
    except TwilioError as exc:
        return _render(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            return _render(_not_found(request))
        # Twilio's "Method not allowed" is 20004; its other HTTP-level codes are 20000 + status.
        code = 20004 if exc.status == 405 else 20000 + exc.status
        return _render(TwilioError(exc.status, code, exc.reason))


def _render(exc: TwilioError) -> web.Response:
    if exc.status != 401:
        return error_response(exc.status, exc.code, exc.message)
    response = error_response(
        401, exc.code, exc.message, detail="Your AccountSid or AuthToken was incorrect."
    )
    response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
    return response


def add_routes(app: web.Application) -> None:
    base = f"/{API_VERSION}/Accounts/{{account_sid}}"
    app.router.add_post(f"{base}/Messages.json", create_message)
    app.router.add_get(f"{base}/Messages/{{sid}}.json", fetch_message)
