"""What the money-out driver and the sweeper share about sending transactions through a node.

Both build a transaction through the node, have the signer sign it, broadcast it and follow it to
its solidified block (app/services/money_out_driver.py, app/services/sweeps.py). The shapes they
read from the node, and the two rules that keep a transfer from being paid twice, live here once:

- a transaction is given up only when it can never be mined (``unminable``): in no block, and
  expired as of the solidified block plus one block interval (java-tron may accept a transaction
  into a block up to one slot after its expiration);
- after a refusal the node would repeat for the same bytes (``FATAL_CODES``) the transfer fails
  instead of being built again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol

# Broadcast refusals after which the same transaction will never be accepted.
FATAL_CODES: Final = frozenset({"SIGERROR", "CONTRACT_VALIDATE_ERROR", "CONTRACT_EXE_ERROR"})
# java-tron may accept a transaction into a block up to one slot after its expiration.
EXPIRY_MARGIN_MS: Final = 3_000


class UnsignedTransaction(Protocol):
    @property
    def txid(self) -> str: ...
    @property
    def raw_data(self) -> Mapping[str, Any]: ...
    @property
    def raw_data_hex(self) -> str: ...
    @property
    def expiration_ms(self) -> int: ...


class BroadcastOutcome(Protocol):
    @property
    def accepted(self) -> bool: ...
    @property
    def code(self) -> str | None: ...
    @property
    def message(self) -> str | None: ...


class ChainReceipt(Protocol):
    @property
    def block_number(self) -> int: ...
    @property
    def fee(self) -> int: ...
    @property
    def energy_usage_total(self) -> int: ...
    @property
    def energy_fee(self) -> int: ...
    @property
    def net_usage(self) -> int: ...
    @property
    def net_fee(self) -> int: ...
    @property
    def result(self) -> str: ...


class ChainView(Protocol):
    """Where the chain stands: head and solidified numbers and their block times."""

    @property
    def head_number(self) -> int: ...
    @property
    def head_time_ms(self) -> int: ...
    @property
    def solid_number(self) -> int: ...
    @property
    def solid_time_ms(self) -> int: ...


def unminable(expiration_ms: int, chain: ChainView) -> bool:
    """Expired as of the solidified block: no block from now on can include the transaction."""
    return chain.solid_time_ms > expiration_ms + EXPIRY_MARGIN_MS


def expired_at_head(expiration_ms: int, chain: ChainView) -> bool:
    """Past its expiration at the head (plus the margin): the node refuses it from now on."""
    return chain.head_time_ms >= expiration_ms + EXPIRY_MARGIN_MS
