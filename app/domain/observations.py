"""Facts read off the Tron chain by the chain watcher.

They are neither commands (nobody asks for them) nor domain events (no aggregate decided them):
they are what the node said. The chain watcher publishes them; the payment agent turns them into
commands on payments and invoices. Amounts are integer micro-USDT, addresses base58 ``T…``.

A transfer is identified by ``(tx_hash, log_index)`` wherever it travels, so a redelivered or
re-observed transfer is recognised and applied once.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

_TX_HASH = r"^[0-9a-f]{64}$"
_BLOCK_ID = r"^[0-9a-f]{64}$"
_BASE58_ADDRESS = r"^T[1-9A-HJ-NP-Za-km-z]{33}$"


class Observation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TransferObserved(Observation):
    """A successful TRC-20 ``Transfer`` log of the watched token contract, in a block."""

    tx_hash: str = Field(pattern=_TX_HASH)
    log_index: int = Field(ge=0)
    block_number: int = Field(ge=0)
    block_id: str = Field(pattern=_BLOCK_ID)
    block_timestamp: datetime
    contract_address: str = Field(pattern=_BASE58_ADDRESS)
    from_address: str = Field(pattern=_BASE58_ADDRESS)
    to_address: str = Field(pattern=_BASE58_ADDRESS)
    amount: int = Field(ge=0, description="micro-USDT (token units at 6 decimals)")

    @property
    def transfer_id(self) -> str:
        """The identity of the transfer: the same on every re-observation of it."""
        return f"{self.tx_hash}:{self.log_index}"


class TransferOrphaned(Observation):
    """A transfer seen earlier whose block was replaced by a reorganisation of the chain."""

    tx_hash: str = Field(pattern=_TX_HASH)
    log_index: int = Field(ge=0)
    block_number: int = Field(ge=0)
    block_id: str = Field(pattern=_BLOCK_ID, description="the block that was replaced")
    to_address: str = Field(pattern=_BASE58_ADDRESS)

    @property
    def transfer_id(self) -> str:
        return f"{self.tx_hash}:{self.log_index}"


class ChainHeadAdvanced(Observation):
    """The watcher has processed every block up to ``head_number``; used to count confirmations."""

    head_number: int = Field(ge=0)
    head_block_id: str = Field(pattern=_BLOCK_ID)
    solidified_number: int = Field(ge=0)
    observed_at: datetime
    block_timestamp: datetime | None = Field(
        default=None,
        description="when block ``head_number`` was produced: the chain's own clock, which "
        "invoice expiry waits for (absent from heads published before it was added)",
    )
