"""The chain watcher on the leader worker: Tron blocks in, deposit-address activity out.

Faust elects one leader among the workers; only it polls the node (app/adapters/tron/watcher.py), so
blocks are read once and in order. The cursor lives in PostgreSQL, so a new leader resumes where
the old one stopped. Only transfers to our deposit addresses (the ``deposit_addresses`` rows the
API commits before it creates an invoice) are published, not all of Tron's USDT traffic.
Observations go to ``checkout.deposits``: transfers and orphans keyed by the receiving address
(landing on the partition that owns that address's invoice), chain heads to every partition (each
partition counts confirmations for its own addresses).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from app.adapters.tron.address_filter import PostgresDepositAddressFilter
from app.adapters.tron.errors import NodeUnavailable, TokenContractMismatch
from app.adapters.tron.store import PostgresWatcherStore
from app.adapters.tron.watcher import ChainWatcher
from app.domain.observations import (
    ChainHeadAdvanced,
    Observation,
    TransferObserved,
    TransferOrphaned,
)
from app.faust_app import app, resources, settings, topics
from app.runtime.codecs import (
    ChainHeadMessage,
    OrphanMessage,
    TransferMessage,
    encode_deposit_message,
)
from app.runtime.topics import DEPOSITS

logger = logging.getLogger(__name__)

POLL_FAILURES = Counter(
    "checkout_chain_watcher_poll_failures",
    "Polls of the chain watcher that failed (the next poll resumes from the stored cursor)",
    ["error"],
)

_watcher: ChainWatcher | None = None
_last_tick = 0.0


async def publish_observations(observations: Sequence[Observation]) -> None:
    """Send the watcher's observations and wait until Kafka has them all (at-least-once)."""
    topic = topics[DEPOSITS.name]
    pending: list[Awaitable[Any]] = []
    for observation in observations:
        match observation:
            case TransferObserved():
                message = TransferMessage(transfer=observation)
                pending.append(
                    await topic.send(
                        key=observation.to_address.encode(), value=encode_deposit_message(message)
                    )
                )
            case TransferOrphaned():
                orphan = OrphanMessage(orphan=observation, noticed_at=datetime.now(UTC))
                pending.append(
                    await topic.send(
                        key=observation.to_address.encode(), value=encode_deposit_message(orphan)
                    )
                )
            case ChainHeadAdvanced():
                head = encode_deposit_message(ChainHeadMessage(head=observation))
                for partition in range(DEPOSITS.partitions):
                    pending.append(
                        await topic.send(key=b"chain-head", value=head, partition=partition)
                    )
    if pending:
        await asyncio.gather(*pending)


async def _ready_watcher() -> ChainWatcher:
    global _watcher, _last_tick
    now = time.monotonic()
    if now - _last_tick > 5 * settings.chain.poll_interval + 5:
        # The timer did not run for a while: leadership was elsewhere and another worker moved
        # the cursor. Start from what the store says, not from this worker's old memory.
        _watcher = None
    _last_tick = now
    if _watcher is None:
        watcher = ChainWatcher.from_settings(
            settings.chain,
            node=resources.tron_node,
            store=PostgresWatcherStore(resources.db, settings.chain.watcher_name),
            publish=publish_observations,
            deposit_addresses=PostgresDepositAddressFilter(resources.db),
        )
        await watcher.check_token()
        _watcher = watcher
    return _watcher


@app.timer(interval=settings.chain.poll_interval, on_leader=True)
async def watch_chain() -> None:
    try:
        watcher = await _ready_watcher()
        await watcher.poll()
    except TokenContractMismatch as exc:
        # Watching the wrong contract would miss every payment: refuse loudly, every tick.
        POLL_FAILURES.labels(error=type(exc).__name__).inc()
        logger.critical("chain watcher refuses to start: %s", exc)
    except NodeUnavailable as exc:
        POLL_FAILURES.labels(error=type(exc).__name__).inc()
        logger.warning("chain watcher: %s; next poll resumes from the stored cursor", exc)
    except Exception as exc:
        # Nothing is lost: the cursor only moves after Kafka acknowledged a block's observations.
        POLL_FAILURES.labels(error=type(exc).__name__).inc()
        logger.exception("chain watcher poll failed; next poll resumes from the stored cursor")
