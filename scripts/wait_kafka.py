"""Wait until a Kafka client gets cluster metadata with the expected number of brokers.

A listening socket is not enough: a KRaft broker accepts connections before its controller quorum
has elected a leader, and clients then see no brokers. Used by scripts/infra.sh.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError


async def brokers_seen(bootstrap: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return len(cluster["brokers"])
    finally:
        await admin.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--brokers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        try:
            seen = await brokers_seen(args.bootstrap)
        except (TimeoutError, KafkaError, OSError) as exc:
            last_error = repr(exc)
        else:
            if seen >= args.brokers:
                return 0
            last_error = f"{seen} of {args.brokers} brokers in the metadata"
        await asyncio.sleep(0.5)
    print(
        f"Kafka at {args.bootstrap} not ready after {args.timeout:.0f} s: {last_error}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
