"""Field types shared by commands, events and aggregates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints

IDENTIFIER_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"
TRON_ADDRESS_PATTERN: Final = r"^T[1-9A-HJ-NP-Za-km-z]{33}$"
TX_HASH_PATTERN: Final = r"^[0-9a-f]{64}$"
BLOCK_ID_PATTERN: Final = r"^[0-9a-f]{64}$"

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=IDENTIFIER_PATTERN)
]
"""An id chosen by the platform or the merchant: ``inv_…``, ``mer_…``, ``<tx_hash>:<log_index>``."""

CommandId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
"""The id that makes a command idempotent: an Idempotency-Key, or derived from what caused it."""

TronAddress = Annotated[str, StringConstraints(pattern=TRON_ADDRESS_PATTERN)]
TxHash = Annotated[str, StringConstraints(pattern=TX_HASH_PATTERN)]
BlockId = Annotated[str, StringConstraints(pattern=BLOCK_ID_PATTERN)]
BlockNumber = Annotated[int, Field(ge=0)]
Confirmations = Annotated[int, Field(ge=0)]


def _to_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware instant, kept in UTC so it always serialises the same way (``…Z``)."""


def transfer_id(tx_hash: str, log_index: int) -> str:
    """The identity of a TRC-20 transfer, and so of the payment it makes: ``<tx_hash>:<index>``."""
    return f"{tx_hash}:{log_index}"
