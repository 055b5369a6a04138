"""The signer's policy (app/domain/signing.py): every rule, each refusal named."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import pytest

from app.domain.signing import (
    Context,
    Purpose,
    SignerLimits,
    SigningRefused,
    Wanted,
    check_signing,
)

pytestmark = pytest.mark.unit

HOT = "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8"
DEPOSIT = "TEYXHsQM2afhpTsNDXHYqXMj6k1sgd23wQ"
CUSTOMER = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
NOW = 1_780_000_000_000
USDT_1 = 1_000_000

LIMITS = SignerLimits(
    per_transaction={
        Purpose.PAYOUT: 50_000 * USDT_1,
        Purpose.REFUND: 5_000 * USDT_1,
        Purpose.SWEEP: 10**12,
        Purpose.SWEEP_TOPUP: 30_000_000,
    },
    per_day={
        Purpose.PAYOUT: 200_000 * USDT_1,
        Purpose.REFUND: 20_000 * USDT_1,
        Purpose.SWEEP: 10**13,
        Purpose.SWEEP_TOPUP: 3_000_000_000,
    },
)


@dataclass(frozen=True)
class Built:
    kind: Literal["trx", "trc20"] = "trc20"
    owner: str = HOT
    to: str = CUSTOMER
    amount: int = 2 * USDT_1
    token_contract: str | None = USDT
    fee_limit: int = 30_000_000
    expiration_ms: int = NOW + 60_000


def context(signer: str = HOT, today: int = 0) -> Context:
    return Context(
        signing_address=signer,
        hot_wallet=HOT,
        deposit_addresses={DEPOSIT},
        token_contract=USDT,
        signed_today=today,
        now_ms=NOW,
    )


def wanted_for(built: Built, purpose: Purpose) -> Wanted:
    return Wanted(purpose, built.kind, built.to, built.amount, built.token_contract)


def refusal(
    built: Built, purpose: Purpose, *, wanted: Wanted | None = None, ctx: Context | None = None
) -> str:
    with pytest.raises(SigningRefused) as caught:
        check_signing(wanted or wanted_for(built, purpose), built, LIMITS, ctx or context())
    return caught.value.rule


def test_each_purpose_signs_its_own_shape() -> None:
    check_signing(wanted_for(Built(), Purpose.PAYOUT), Built(), LIMITS, context())
    check_signing(wanted_for(Built(), Purpose.REFUND), Built(), LIMITS, context())
    sweep = Built(owner=DEPOSIT, to=HOT, amount=150 * USDT_1)
    check_signing(wanted_for(sweep, Purpose.SWEEP), sweep, LIMITS, context(DEPOSIT))
    topup = Built(kind="trx", to=DEPOSIT, amount=14_000_000, token_contract=None, fee_limit=0)
    check_signing(wanted_for(topup, Purpose.SWEEP_TOPUP), topup, LIMITS, context())


def test_a_transaction_that_does_not_do_what_the_request_says_is_refused() -> None:
    asked = Wanted(Purpose.PAYOUT, "trc20", CUSTOMER, 2 * USDT_1, USDT)
    for built in (Built(amount=20 * USDT_1), Built(to=DEPOSIT), Built(token_contract=HOT)):
        assert refusal(built, Purpose.PAYOUT, wanted=asked) == "decoded_mismatch"


def test_a_payout_or_refund_to_one_of_our_addresses_is_refused() -> None:
    for to in (DEPOSIT, HOT):
        assert refusal(Built(to=to), Purpose.PAYOUT) == "destination_is_ours"
        assert refusal(Built(to=to), Purpose.REFUND) == "destination_is_ours"


def test_limits_per_transaction_and_per_day() -> None:
    over = Built(amount=50_001 * USDT_1)
    assert refusal(over, Purpose.PAYOUT) == "limit_per_transaction"
    near = context(today=199_999 * USDT_1)
    assert refusal(Built(), Purpose.PAYOUT, ctx=near) == "limit_per_day"
    check_signing(
        wanted_for(Built(amount=USDT_1), Purpose.PAYOUT), Built(amount=USDT_1), LIMITS, near
    )


def test_the_wrong_key_a_long_validity_or_a_high_fee_limit_is_refused() -> None:
    assert refusal(Built(), Purpose.PAYOUT, ctx=context(signer=DEPOSIT)) == "wrong_signer"
    assert refusal(Built(expiration_ms=NOW + 3_600_000), Purpose.PAYOUT) == "expiration"
    assert refusal(Built(expiration_ms=NOW - 1), Purpose.PAYOUT) == "expiration"
    assert refusal(Built(fee_limit=1_000_000_000), Purpose.PAYOUT) == "fee_limit"


def test_sweeps_go_to_the_hot_wallet_and_top_ups_to_deposit_addresses_only() -> None:
    away = Built(owner=DEPOSIT, to=CUSTOMER)
    assert refusal(away, Purpose.SWEEP, ctx=context(DEPOSIT)) == "destination"
    topup = Built(kind="trx", to=CUSTOMER, amount=14_000_000, token_contract=None, fee_limit=0)
    assert refusal(topup, Purpose.SWEEP_TOPUP) == "destination"
    big = replace(topup, to=DEPOSIT, amount=31_000_000)
    assert refusal(big, Purpose.SWEEP_TOPUP) == "limit_per_transaction"
    trx_payout = Built(kind="trx", token_contract=None, fee_limit=0)
    assert refusal(trx_payout, Purpose.PAYOUT) == "token"


def test_a_purpose_without_limits_signs_nothing() -> None:
    bare = SignerLimits()
    with pytest.raises(SigningRefused) as caught:
        check_signing(wanted_for(Built(), Purpose.PAYOUT), Built(), bare, context())
    assert caught.value.rule == "limit_per_transaction"
