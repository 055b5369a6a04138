"""Field types shared by commands, events and aggregates."""

from __future__ import annotations

import re
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


# Control characters (tab and newlines apart) and unpaired surrogates: no text a merchant gives
# holds them; PostgreSQL refuses NUL and surrogates, and they break what a customer is shown.
_NOT_TEXT: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_NOT_IN_A_LINE: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _plain_text(text: str) -> str:
    if _NOT_TEXT.search(text):
        raise ValueError("must not contain control characters or unpaired surrogates")
    return text


def one_line(text: str) -> str:
    """``text`` if it is one line without control characters; else a ValueError."""
    if _NOT_IN_A_LINE.search(text):
        raise ValueError("must be one line without control characters or unpaired surrogates")
    return text


PlainText = Annotated[str, AfterValidator(_plain_text)]
"""Free text a merchant gives (a description, a reason): newlines and tabs allowed."""

OneLineText = Annotated[str, AfterValidator(one_line)]
"""A merchant's reference or key (an order id, a metadata key): no control character at all."""


def _to_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware instant, kept in UTC so it always serialises the same way (``…Z``)."""


def transfer_id(tx_hash: str, log_index: int) -> str:
    """The identity of a TRC-20 transfer, and so of the payment it makes: ``<tx_hash>:<index>``."""
    return f"{tx_hash}:{log_index}"
