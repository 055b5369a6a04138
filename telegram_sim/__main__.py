"""`python -m telegram_sim` / `telegram-sim`: run the Telegram Bot API stand-in."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import signal
import sys

from aiohttp import web

from telegram_sim.app import create_app
from telegram_sim.simulator import SimSettings, token_problem, username_problem

log = logging.getLogger("telegram_sim")


def _bot(value: str) -> tuple[str, str]:
    token, sep, username = value.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{value!r}: expected TOKEN=username")
    if problem := token_problem(token):
        raise argparse.ArgumentTypeError(f"token {token!r} {problem}")
    if problem := username_problem(username):
        raise argparse.ArgumentTypeError(f"username {username!r} {problem}")
    return token, username


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="telegram-sim",
        description="A stand-in for Telegram's Bot API (getUpdates, webhooks, sendMessage, "
        "sendPhoto, ...) keeping its state in memory, with a /sim/ control API for tests.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument(
        "--bot",
        type=_bot,
        action="append",
        default=[],
        metavar="TOKEN=username",
        help="a bot that exists from the start, e.g. 123456:ABC-DEF=checkout_bot (repeatable)",
    )
    parser.add_argument(
        "--webhook-retry-delay",
        type=float,
        default=1.0,
        help="seconds before the first retry of a failed webhook delivery; doubles after each "
        "failure (default 1)",
    )
    parser.add_argument(
        "--webhook-max-retry-delay",
        type=float,
        default=60.0,
        help="the longest pause between webhook retries, seconds (default 60)",
    )
    parser.add_argument(
        "--webhook-timeout",
        type=float,
        default=10.0,
        help="seconds a webhook has to answer one update (default 10)",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    args = parser.parse_args(argv)
    tokens = [token for token, _ in args.bot]
    if len(set(tokens)) != len(tokens):
        parser.error("--bot: each token may be given once")
    if args.webhook_retry_delay < 0 or args.webhook_max_retry_delay < args.webhook_retry_delay:
        parser.error(
            "--webhook-retry-delay must be 0 or more and at most --webhook-max-retry-delay"
        )
    if args.webhook_timeout <= 0:
        parser.error("--webhook-timeout must be greater than 0")
    return args


async def serve(args: argparse.Namespace) -> int:
    settings = SimSettings(
        bots=tuple(args.bot),
        webhook_retry_delay=args.webhook_retry_delay,
        webhook_max_retry_delay=args.webhook_max_retry_delay,
        webhook_timeout=args.webhook_timeout,
    )
    # handler_cancellation: a long poll whose client went away stops waiting, as on Telegram.
    runner = web.AppRunner(
        create_app(settings), access_log=None, handle_signals=False, handler_cancellation=True
    )
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            log.error(
                "port %s:%d is already in use: is another stand-in running? "
                "Stop it or pass --port.",
                args.host,
                args.port,
            )
        else:
            log.error("cannot listen on %s:%d: %s", args.host, args.port, exc)
        return 1
    names = ", ".join(f"@{username}" for _, username in args.bot) or "no bots yet"
    log.info("telegram stand-in listening on http://%s:%d (%s)", args.host, args.port, names)
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
