"""`python -m sms_sim` / `sms-sim`: run the stand-in for Twilio's Messages API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import re
import signal
import sys

from aiohttp import web

from sms_sim.app import create_app
from sms_sim.settings import SimSettings
from sms_sim.twilio_api import E164

log = logging.getLogger("sms_sim")

ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
# Twilio's magic test number: the one "From" its test credentials accept.
DEFAULT_FROM = "+15005550006"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sms-sim",
        description="A stand-in for Twilio's Messages REST API (/2010-04-01/Accounts/{sid}/"
        "Messages.json) for one account, with a /sim/ control API to read what was sent and "
        "plan failures.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8094)
    parser.add_argument(
        "--account-sid",
        default="AC" + "0" * 32,
        help="the account SID clients must use, in the URL and as the basic-auth user",
    )
    parser.add_argument(
        "--auth-token", default="sms-sim-token", help="the basic-auth password clients must use"
    )
    parser.add_argument(
        "--from",
        dest="from_numbers",
        action="append",
        metavar="NUMBER",
        help=f"a number the account may send from, E.164; repeatable (default {DEFAULT_FROM})",
    )
    parser.add_argument(
        "--delivery-delay",
        type=float,
        default=0.0,
        help="seconds until a message reads back as delivered rather than queued (default 0)",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    args = parser.parse_args(argv)
    if not ACCOUNT_SID.fullmatch(args.account_sid):
        parser.error("--account-sid must be 'AC' followed by 32 hex digits, as Twilio's are")
    if not args.auth_token:
        parser.error("--auth-token must not be empty")
    args.from_numbers = args.from_numbers or [DEFAULT_FROM]
    for number in args.from_numbers:
        if not E164.fullmatch(number):
            parser.error(f"--from {number!r} is not an E.164 number like {DEFAULT_FROM}")
    if args.delivery_delay < 0:
        parser.error("--delivery-delay must be 0 or more")
    return args


async def serve(args: argparse.Namespace) -> int:
    settings = SimSettings(
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        from_numbers=frozenset(args.from_numbers),
        delivery_delay=args.delivery_delay,
    )
    runner = web.AppRunner(create_app(settings), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            log.error(
                "port %s:%d is already in use: is another sms-sim running? Stop it or pass --port.",
                args.host,
                args.port,
            )
        else:
            log.error("cannot listen on %s:%d: %s", args.host, args.port, exc)
        return 1
    log.info(
        "SMS stand-in (Twilio Messages API) listening on http://%s:%d for account %s, from %s",
        args.host,
        args.port,
        settings.account_sid,
        ", ".join(sorted(settings.from_numbers)),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await runner.cleanup()
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(serve(args)))


if __name__ == "__main__":
    main()
