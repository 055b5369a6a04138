"""Prometheus metrics of the chain watcher and the Tron node client (default registry).

What an operator reads from them:
- ``checkout_chain_head_lag_blocks`` growing: the watcher falls behind (node slow or down, see
  ``checkout_chain_node_errors_total``); it catches up by itself once the node answers.
- ``checkout_chain_reorgs_total`` rising now and then at depth 1–3 is normal on Tron; a reorg deeper
  than the kept window (``checkout_chain_reorgs_beyond_window_total``) pages the operator: the
  watcher reads on from the node's chain, the blocks below need a rescan.
- ``checkout_chain_transfers_seen_total`` far above ``checkout_chain_transfers_observed_total`` is
  normal: most USDT transfers pay somebody else. Observed staying flat while customers report
  payments means the watcher does not see the ``deposit_addresses`` rows the API writes: check
  that the workers and the API use the same ``DATABASE_URL``.
- ``checkout_chain_watcher_refusing`` at 1: the watcher has no cursor but its platform watched
  before, and reads nothing until an operator runs ``checkout chain start`` (its log says how).
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

BLOCKS_PROCESSED = Counter(
    "checkout_chain_blocks_processed_total", "Blocks the chain watcher has processed and persisted."
)
TRANSFERS_SEEN = Counter(
    "checkout_chain_transfers_seen_total",
    "USDT Transfer logs decoded from processed blocks, to any address.",
)
TRANSFERS_OBSERVED = Counter(
    "checkout_chain_transfers_observed_total",
    "USDT Transfer logs to one of our deposit addresses, published as TransferObserved.",
)
TRANSFERS_ORPHANED = Counter(
    "checkout_chain_transfers_orphaned_total", "Transfers published as orphaned by a reorg."
)
REORGS = Counter("checkout_chain_reorgs_total", "Chain reorganisations the watcher has handled.")
REORGS_BEYOND_WINDOW = Counter(
    "checkout_chain_reorgs_beyond_window_total",
    "Reorgs deeper than the kept window: the watcher anchored again below them (alert "
    "ChainReorgBeyondWindow; blocks below need a rescan, see checkout chain status).",
)
REORG_DEPTH = Histogram(
    "checkout_chain_reorg_depth_blocks",
    "Blocks replaced per reorganisation.",
    buckets=(1, 2, 3, 5, 8, 13, 19, 32, 64),
)
PUBLISH_FAILURES = Counter(
    "checkout_chain_publish_failures_total",
    "Publish calls that failed; the block is retried, the cursor did not move.",
)
CURSOR_HEIGHT = Gauge(
    "checkout_chain_cursor_height", "The last block the watcher fully processed (its cursor)."
)
NODE_HEAD_HEIGHT = Gauge("checkout_chain_node_head_height", "The node's head block number.")
NODE_SOLIDIFIED_HEIGHT = Gauge(
    "checkout_chain_node_solidified_height", "The node's solidified (irreversible) block number."
)
HEAD_LAG = Gauge("checkout_chain_head_lag_blocks", "Node head minus the watcher's cursor.")


class Refusal:
    """Whether this worker's watcher refused at a recent poll (within ``fresh_for`` seconds).

    Read when scraped, so a worker that refused and then lost the leadership (its polls stop)
    reads 0 a minute later instead of 1 for ever: only the leader's value is 1.
    """

    def __init__(self, fresh_for: float = 60.0) -> None:
        self._fresh_for = fresh_for
        self._at: float | None = None

    def mark(self) -> None:
        self._at = time.monotonic()

    def clear(self) -> None:
        self._at = None

    def value(self) -> float:
        fresh = self._at is not None and time.monotonic() - self._at < self._fresh_for
        return 1.0 if fresh else 0.0


REFUSAL = Refusal()
REFUSING = Gauge(
    "checkout_chain_watcher_refusing",
    "1 while the watcher refuses to start at the head (no cursor, but the platform watched "
    "before): nothing is read until `checkout chain start`.",
)
REFUSING.set_function(REFUSAL.value)

NODE_REQUESTS = Counter(
    "checkout_chain_node_requests_total", "HTTP calls made to the Tron node.", ["endpoint"]
)
NODE_ERRORS = Counter(
    "checkout_chain_node_errors_total",
    "Failed Tron node calls, by endpoint and reason (timeout, connect, http_5xx, http_4xx, "
    "rate_limited, bad_response).",
    ["endpoint", "reason"],
)
NODE_RETRIES = Counter(
    "checkout_chain_node_retries_total", "Tron node calls retried after an error.", ["endpoint"]
)
NODE_GIVE_UPS = Counter(
    "checkout_chain_node_unavailable_total",
    "Tron node calls that failed every retry (NodeUnavailable raised; the poll is retried later).",
    ["endpoint"],
)

DEPOSIT_ADDRESSES_ALLOCATED = Counter(
    "checkout_deposit_addresses_allocated_total", "Deposit addresses allocated to invoices."
)
