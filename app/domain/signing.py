"""The signer's policy: what it will sign, checked against the transaction it decoded itself.

docs/money-out.md, "The signer". A signing request says what the platform wants (purpose, signing
account, the transfer); the signer decodes the raw transaction itself
(app/adapters/tron/raw_transactions.py) and signs only when the two agree and every rule holds.
A refusal names its rule, so an operator knows which limit or which mismatch stopped a payout.

Purposes and their shapes:

| purpose | signing account | moves | to |
|---|---|---|---|
| ``payout`` | hot wallet | the token | an outside address |
| ``refund`` | hot wallet | the token | an outside address |
| ``sweep`` | a deposit address | the token | the hot wallet |
| ``sweep_topup`` | hot wallet | TRX | a deposit address (to pay the sweep's energy) |
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal, Protocol


class Purpose(StrEnum):
    PAYOUT = "payout"
    REFUND = "refund"
    SWEEP = "sweep"
    SWEEP_TOPUP = "sweep_topup"


class SigningRefused(Exception):
    """The signer will not sign; ``rule`` names why (stable, for metrics and the operator)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.message = message


class Transfer(Protocol):
    """What a transaction does, as decoded (``DecodedTransfer`` has these)."""

    @property
    def kind(self) -> Literal["trx", "trc20"]: ...
    @property
    def owner(self) -> str: ...
    @property
    def to(self) -> str: ...
    @property
    def amount(self) -> int: ...
    @property
    def token_contract(self) -> str | None: ...
    @property
    def fee_limit(self) -> int: ...
    @property
    def expiration_ms(self) -> int: ...


@dataclass(frozen=True)
class Wanted:
    """The transfer a signing request asks for."""

    purpose: Purpose
    kind: Literal["trx", "trc20"]
    to: str
    amount: int
    token_contract: str | None = None


@dataclass(frozen=True)
class SignerLimits:
    """The signer's own limits, set where it runs (never by the workers)."""

    per_transaction: Mapping[Purpose, int] = field(default_factory=dict)
    per_day: Mapping[Purpose, int] = field(default_factory=dict)
    max_fee_limit: int = 100_000_000  # sun: 100 TRX of energy at most per transaction
    max_expiration_ms: int = 10 * 60 * 1000  # a transaction valid longer is not signed


@dataclass(frozen=True)
class Context:
    """What the signer knows beside the request: its own accounts and what it signed today."""

    signing_address: str  # the address of the key asked to sign
    hot_wallet: str
    deposit_addresses: Container[str]  # ours: never a payout's or refund's destination
    token_contract: str  # the USDT contract the platform deals in
    signed_today: int  # of this purpose, in the purpose's unit, UTC day
    now_ms: int


def check_signing(
    wanted: Wanted, decoded: Transfer, limits: SignerLimits, context: Context
) -> None:
    """Nothing when the signer may sign ``decoded`` for ``wanted``; ``SigningRefused`` otherwise."""
    _same_transfer(wanted, decoded)
    if decoded.owner != context.signing_address:
        raise SigningRefused(
            "wrong_signer", f"the transaction spends from {decoded.owner}, not the key asked"
        )
    _shape(wanted.purpose, decoded, context)
    if decoded.fee_limit > limits.max_fee_limit:
        raise SigningRefused(
            "fee_limit", f"fee limit {decoded.fee_limit} sun is over {limits.max_fee_limit}"
        )
    if not context.now_ms < decoded.expiration_ms <= context.now_ms + limits.max_expiration_ms:
        raise SigningRefused("expiration", "the transaction expired, or stays valid too long")
    _within_limits(wanted.purpose, decoded.amount, limits, context.signed_today)


def _same_transfer(wanted: Wanted, decoded: Transfer) -> None:
    asked = (wanted.kind, wanted.to, wanted.amount, wanted.token_contract)
    built = (decoded.kind, decoded.to, decoded.amount, decoded.token_contract)
    if asked != built:
        raise SigningRefused(
            "decoded_mismatch",
            f"the transaction does {built}, the request asks {asked}",
        )
    if decoded.amount <= 0:
        raise SigningRefused("amount", "nothing to transfer")


def _platform_token(purpose: Purpose, decoded: Transfer, context: Context) -> None:
    if decoded.kind != "trc20" or decoded.token_contract != context.token_contract:
        raise SigningRefused("token", f"a {purpose} moves the platform's token only")


def _outgoing(purpose: Purpose, decoded: Transfer, context: Context) -> None:
    _platform_token(purpose, decoded, context)
    if decoded.owner != context.hot_wallet:
        raise SigningRefused("wrong_signer", f"a {purpose} is paid from the hot wallet")
    if decoded.to == context.hot_wallet or decoded.to in context.deposit_addresses:
        raise SigningRefused("destination_is_ours", f"a {purpose} to our own address {decoded.to}")


def _sweep(purpose: Purpose, decoded: Transfer, context: Context) -> None:
    _platform_token(purpose, decoded, context)
    if decoded.to != context.hot_wallet:
        raise SigningRefused("destination", "a sweep goes to the hot wallet only")
    if decoded.owner == context.hot_wallet:
        raise SigningRefused("wrong_signer", "a sweep spends from a deposit address")


def _sweep_topup(purpose: Purpose, decoded: Transfer, context: Context) -> None:
    if decoded.kind != "trx":
        raise SigningRefused("token", "a sweep top-up sends TRX")
    if decoded.owner != context.hot_wallet or decoded.to not in context.deposit_addresses:
        raise SigningRefused(
            "destination", "a sweep top-up goes from the hot wallet to a deposit address"
        )


_SHAPES: Final = {
    Purpose.PAYOUT: _outgoing,
    Purpose.REFUND: _outgoing,
    Purpose.SWEEP: _sweep,
    Purpose.SWEEP_TOPUP: _sweep_topup,
}


def _shape(purpose: Purpose, decoded: Transfer, context: Context) -> None:
    _SHAPES[purpose](purpose, decoded, context)


def _within_limits(purpose: Purpose, amount: int, limits: SignerLimits, today: int) -> None:
    each = limits.per_transaction.get(purpose)
    if each is None or amount > each:
        raise SigningRefused(
            "limit_per_transaction",
            f"{amount} is over the {purpose} limit of {each or 0} per transaction",
        )
    daily = limits.per_day.get(purpose)
    if daily is None or today + amount > daily:
        raise SigningRefused(
            "limit_per_day",
            f"{today} signed today + {amount} is over the {purpose} limit of {daily or 0} a day",
        )
