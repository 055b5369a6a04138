"""`--data-dir`: an append-only JSON-lines log of blocks and reorgs, replayed at start.

Replaying re-executes the logged transactions with the same timestamps and witnesses, so a
restarted simulator resumes at the same height with the same block ids and balances. Start it with
the same fee options it was run with; if the log is damaged, delete the data directory to start
again from genesis (the platform's watcher cursor must then be reset too).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO, Any

import orjson

from tron_sim.blocks import Block
from tron_sim.chain import Chain
from tron_sim.transactions import from_json

log = logging.getLogger("tron_sim.store")
LOG_NAME = "blocks.jsonl"


class BlockLog:
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / LOG_NAME
        self._file: IO[bytes] | None = None

    def load_into(self, chain: Chain) -> int:
        """Replay the log onto a fresh chain; returns the number of entries read."""
        if not self.path.exists():
            return 0
        entries = 0
        good_bytes = 0
        chain.log_blocks = False
        with self.path.open("rb") as lines:
            for line in lines:
                try:
                    entry = orjson.loads(line) if line.strip() else None
                except orjson.JSONDecodeError:
                    # A line cut short by a crash: keep what came before it.
                    log.warning("ignoring a damaged last entry of %s", self.path)
                    break
                if entry is not None:
                    if entry["type"] == "reorg":
                        chain.replay_reorg(entry["depth"])
                    else:
                        _replay_block(chain, entry)
                    entries += 1
                good_bytes += len(line)
        chain.log_blocks = True
        with self.path.open("r+b") as file:
            file.truncate(good_bytes)
        log.info("replayed %d log entries: head %d", entries, chain.head.number)
        return entries

    def open(self) -> None:
        self._file = self.path.open("ab")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write(self, entry: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(orjson.dumps(entry) + b"\n")
        self._file.flush()

    def block_added(self, block: Block) -> None:
        self._write(
            {
                "type": "block",
                "number": block.number,
                "id": block.id_hex,
                "timestamp": block.timestamp,
                "witness": block.witness_index,
                "transactions": [
                    {"tx": tx.to_json(False), "fail": tx.forced_fail} for tx in block.transactions
                ],
            }
        )

    def reorged(self, depth: int) -> None:
        self._write({"type": "reorg", "depth": depth})


def _replay_block(chain: Chain, entry: dict[str, Any]) -> None:
    txs = []
    for item in entry["transactions"]:
        tx = from_json(item["tx"])
        tx.forced_fail = item["fail"]
        txs.append(tx)
    block = chain.append_block(entry["timestamp"], entry["witness"], txs)
    if block.id_hex != entry["id"]:
        raise RuntimeError(
            f"block log replay diverged at block {entry['number']}: logged {entry['id']}, "
            f"rebuilt {block.id_hex}; was the simulator started with other fee options? "
            "Delete the data directory to start from genesis."
        )
