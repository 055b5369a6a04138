"""Decode the watched token's TRC-20 ``Transfer`` logs from a block's receipts (pure).

Logs, not calldata: ``transferFrom`` and transfers made by other contracts emit the same log, and a
reverted call emits none. Only receipts whose ``receipt.result`` is ``SUCCESS`` count (a TRX-only
receipt has no result and no logs; ``REVERT``, ``OUT_OF_ENERGY``… are failures).

``log_index`` is the log's position in its transaction's ``log`` list, counting every log of the
transaction (not only Transfers, not only the watched contract). java-tron has no block-wide log
index; this position is fixed once the transaction executed, so ``(tx_hash, log_index)`` names the
same transfer on every node and every re-observation, including after a reorg re-includes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from app.adapters.tron.addresses import account_id, from_word
from app.adapters.tron.errors import ChainError
from app.domain.observations import TransferObserved

TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
SUCCESS = "SUCCESS"


class MalformedReceipt(ChainError):
    """A receipt of the watched contract that cannot be decoded; the node's answer is suspect."""


def block_time(timestamp_ms: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)


def is_successful(receipt: Mapping[str, Any]) -> bool:
    """True when the transaction executed and its logs stand."""
    if receipt.get("result") == "FAILED":
        return False
    inner = receipt.get("receipt")
    return isinstance(inner, Mapping) and inner.get("result") == SUCCESS


def decode_transfers(
    receipts: Iterable[Mapping[str, Any]],
    *,
    contract: str,
    block_number: int,
    block_id: str,
    block_timestamp: datetime,
) -> list[TransferObserved]:
    """Every Transfer log of ``contract`` in successful receipts, in block then log order."""
    watched = account_id(contract)
    transfers: list[TransferObserved] = []
    for receipt in receipts:
        if not is_successful(receipt):
            continue
        logs = receipt.get("log") or ()
        for position, entry in enumerate(logs):
            if not _is_transfer_of(entry, watched):
                continue
            transfers.append(
                _decode(entry, receipt, position, contract, block_number, block_id, block_timestamp)
            )
    return transfers


def _is_transfer_of(entry: Any, watched: bytes) -> bool:
    if not isinstance(entry, Mapping):
        return False
    topics = entry.get("topics")
    if not isinstance(topics, list) or len(topics) != 3:
        return False
    if str(topics[0]).lower().removeprefix("0x") != TRANSFER_TOPIC:
        return False
    try:
        return account_id(str(entry.get("address", ""))) == watched
    except ValueError:
        return False


def _decode(
    entry: Mapping[str, Any],
    receipt: Mapping[str, Any],
    position: int,
    contract: str,
    block_number: int,
    block_id: str,
    block_timestamp: datetime,
) -> TransferObserved:
    try:
        topics = list(entry["topics"])
        return TransferObserved(
            tx_hash=str(receipt["id"]).lower(),
            log_index=position,
            block_number=block_number,
            block_id=block_id,
            block_timestamp=block_timestamp,
            contract_address=contract,
            from_address=from_word(str(topics[1])),
            to_address=from_word(str(topics[2])),
            amount=int(str(entry.get("data") or "0").removeprefix("0x") or "0", 16),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise MalformedReceipt(
            f"undecodable Transfer log {position} of tx {receipt.get('id')!r} "
            f"in block {block_number}: {exc}"
        ) from None
