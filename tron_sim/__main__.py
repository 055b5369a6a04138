"""`python -m tron_sim` / `tron-sim`: run the Tron node simulator."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from tron_sim.app import SimSettings, create_app

log = logging.getLogger("tron_sim")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tron-sim",
        description="A Tron node simulator speaking the java-tron HTTP API (wallet/ and "
        "walletsolidity/ on one port), with a USDT TRC-20 contract and a /sim/ control API.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="java-tron's HTTP port: 8090")
    parser.add_argument(
        "--block-interval",
        type=float,
        default=3.0,
        help="seconds between blocks (default 3); 0 means blocks only on POST /sim/mine",
    )
    parser.add_argument("--manual", action="store_true", help="same as --block-interval 0")
    parser.add_argument("--paused", action="store_true", help="start with production paused")
    parser.add_argument(
        "--solidify-depth",
        type=int,
        default=18,
        help="solidified height = head - depth (default 18: 19 confirmations)",
    )
    parser.add_argument(
        "--energy-fee", type=int, default=100, help="SUN per energy unit (getEnergyFee)"
    )
    parser.add_argument(
        "--transaction-fee",
        type=int,
        default=1_000,
        help="SUN burnt per byte of bandwidth beyond the free allowance (getTransactionFee)",
    )
    parser.add_argument(
        "--free-net-limit",
        type=int,
        default=600,
        help="free bandwidth bytes per account, recovered over 24 h (getFreeNetLimit)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the chain in DIR/blocks.jsonl so a restart resumes at the same height "
        "(without it every start begins again at genesis, height 0)",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    args = parser.parse_args(argv)
    if args.solidify_depth < 0:
        parser.error("--solidify-depth must be 0 or more")
    if args.block_interval < 0:
        parser.error("--block-interval must be 0 or more")
    if args.energy_fee <= 0:
        parser.error("--energy-fee must be greater than 0")
    if args.transaction_fee < 0:
        parser.error("--transaction-fee must be 0 or more")
    if args.free_net_limit < 0:
        parser.error("--free-net-limit must be 0 or more")
    return args


async def serve(args: argparse.Namespace) -> int:
    settings = SimSettings(
        block_interval=0.0 if args.manual else args.block_interval,
        solidify_depth=args.solidify_depth,
        energy_fee=args.energy_fee,
        transaction_fee=args.transaction_fee,
        free_net_limit=args.free_net_limit,
        data_dir=args.data_dir,
        paused=args.paused,
    )
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            log.error(
                "port %s:%d is already in use: is another simulator or java-tron running? "
                "Stop it or pass --port.",
                args.host,
                args.port,
            )
        else:
            log.error("cannot listen on %s:%d: %s", args.host, args.port, exc)
        return 1
    mode = (
        "manual (POST /sim/mine)"
        if settings.block_interval <= 0
        else (f"a block every {settings.block_interval:g} s")
    )
    log.info("tron simulator listening on http://%s:%d, %s", args.host, args.port, mode)
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
