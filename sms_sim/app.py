"""Wiring: the outbox and the aiohttp application, in one place."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from sms_sim import control, twilio_api
from sms_sim.outbox import Outbox
from sms_sim.settings import SimSettings

# Twilio's own limit is far above what a 1600-character form needs; 64 KiB keeps a stray upload
# from filling the stand-in's memory.
MAX_REQUEST_BYTES: Final = 64 * 1024


def create_app(settings: SimSettings) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[twilio_api.twilio_errors])
    app[twilio_api.SETTINGS_KEY] = settings
    app[twilio_api.OUTBOX_KEY] = Outbox(clock=settings.clock)
    twilio_api.add_routes(app)
    control.add_routes(app)
    return app
