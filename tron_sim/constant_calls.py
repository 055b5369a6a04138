"""`triggerconstantcontract` on the USDT contract: views, and dry runs of state-changing calls."""

from __future__ import annotations

from dataclasses import dataclass

from tron_sim.chain import Chain
from tron_sim.encoding import abi_string, uint_word, word_to_address
from tron_sim.execution import FeeSchedule, plan_call
from tron_sim.ledger import Ledger
from tron_sim.token import (
    SEL_ALLOWANCE,
    SEL_BALANCE_OF,
    SEL_DECIMALS,
    SEL_NAME,
    SEL_SYMBOL,
    SEL_TOTAL_SUPPLY,
    USDT_ADDRESS,
    USDT_DECIMALS,
    USDT_NAME,
    USDT_SYMBOL,
)
from tron_sim.transactions import TRIGGER, Transaction

VIEW_ENERGY = 935
# The USDT ABI's View functions: `triggersmartcontract` runs these as constant calls.
VIEW_SELECTORS = frozenset(
    {SEL_BALANCE_OF, SEL_ALLOWANCE, SEL_DECIMALS, SEL_NAME, SEL_SYMBOL, SEL_TOTAL_SUPPLY}
)


@dataclass(frozen=True, slots=True)
class CallResult:
    ok: bool
    output: str  # hex
    energy: int


def call(chain: Chain, owner: bytes, data: bytes, solid_only: bool) -> CallResult:
    selector, args = data[:4], data[4:]
    if selector == SEL_BALANCE_OF and len(args) >= 32:
        balance = chain.balance("token", word_to_address(args[:32]), solid_only) or 0
        return CallResult(True, uint_word(balance), VIEW_ENERGY)
    if selector == SEL_ALLOWANCE and len(args) >= 64:
        key = (word_to_address(args[:32]), word_to_address(args[32:64]))
        return CallResult(True, uint_word(chain.balance("allowance", key, solid_only) or 0), 1_093)
    views = {
        SEL_DECIMALS: uint_word(USDT_DECIMALS),
        SEL_SYMBOL: abi_string(USDT_SYMBOL),
        SEL_NAME: abi_string(USDT_NAME),
        SEL_TOTAL_SUPPLY: uint_word(chain.config.faucet_usdt),
    }
    if selector in views:
        return CallResult(True, views[selector], 462)
    return _dry_run(chain.ledger, chain.config.fees, owner, data)


def _dry_run(ledger: Ledger, fees: FeeSchedule, owner: bytes, data: bytes) -> CallResult:
    """A state-changing call (transfer, transferFrom, approve) run without keeping its effects."""
    probe = Transaction(
        kind=TRIGGER,
        owner=owner,
        contract_address=USDT_ADDRESS,
        data=data,
        ref_block_bytes=b"",
        ref_block_hash=b"",
        expiration=0,
        timestamp=0,
    )
    move = plan_call(ledger, probe, fees)
    if move is None:
        return CallResult(False, "", fees.energy_revert)
    return CallResult(True, uint_word(1), move.energy)
