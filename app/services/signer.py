"""The signer's one use case: answer a signing request with a signature or a named refusal.

docs/money-out.md, "The signer". The signer runs in its own process (its own host in production)
and is the only holder of private keys; this module holds its decisions, the keys stay behind the
``KeyStore`` port (files today; a KMS or an HSM implements the same two methods). For one request:

1. the same request id gets the same answer as before (the signed log), so a redelivered request
   or a restarted signer never signs a second, different transaction for one payout;
2. the raw transaction is decoded by the signer itself — what it cannot read it does not sign;
3. the policy (app/domain/signing.py) must accept it, with today's signed total of that purpose
   counted from the signed log (a restart does not reset the day);
4. the transaction id is ``sha256(raw)`` as java-tron computes it, and that is what gets signed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Container
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from app.domain.signing import (
    Context,
    Purpose,
    SignerLimits,
    SigningRefused,
    Transfer,
    Wanted,
    check_signing,
)


@dataclass(frozen=True)
class SigningRequest:
    request_id: str
    account: str  # "hot_wallet" or "deposit:<index>"
    wanted: Wanted
    raw_data_hex: str
    # A sweep top-up names the deposit account it pays ("deposit:<index>"): the signer derives
    # that address itself, so a top-up to any of our addresses is recognised, whatever its
    # index (the range it derives otherwise only grows with sweeps, which need a top-up first).
    destination_account: str | None = None


@dataclass(frozen=True)
class SigningAnswer:
    request_id: str
    txid: str | None = None
    signature: str | None = None  # hex, 65 bytes (r, s, v) as java-tron expects
    refused: str | None = None  # the rule that refused it
    message: str | None = None

    @property
    def signed(self) -> bool:
        return self.signature is not None


class UnknownAccount(Exception):
    """An account name the key store does not hold a key for."""


class KeyStore(Protocol):
    """Holds the keys; says which address an account signs for, and signs a digest."""

    @property
    def hot_wallet(self) -> str: ...

    def address(self, account: str) -> str: ...

    def sign(self, account: str, digest: bytes) -> bytes: ...

    def deposit_addresses(self) -> Container[str]: ...


class SignedLog(Protocol):
    """What the signer answered, durable across restarts (a local file: it has no database)."""

    def answer(self, request_id: str) -> SigningAnswer | None: ...

    def signed_today(self, purpose: Purpose, day: str) -> int: ...

    def record(self, answer: SigningAnswer, purpose: Purpose, amount: int, day: str) -> None: ...


class Signer:
    def __init__(
        self,
        keys: KeyStore,
        log: SignedLog,
        limits: SignerLimits,
        *,
        token_contract: str,
        decode: Callable[[str], Transfer],
        undecodable: type[Exception],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._keys = keys
        self._log = log
        self._limits = limits
        self._token_contract = token_contract
        self._decode = decode
        self._undecodable = undecodable
        self._now = now

    def handle(self, request: SigningRequest) -> SigningAnswer:
        held = self._log.answer(request.request_id)
        if held is not None:
            return held
        now = self._now()
        day = now.date().isoformat()
        purpose = request.wanted.purpose
        try:
            answer = self._sign(request, now, day)
        except SigningRefused as refused:
            answer = SigningAnswer(
                request.request_id, refused=refused.rule, message=refused.message
            )
        self._log.record(answer, purpose, request.wanted.amount if answer.signed else 0, day)
        return answer

    def _sign(self, request: SigningRequest, now: datetime, day: str) -> SigningAnswer:
        try:
            decoded = self._decode(request.raw_data_hex)
        except self._undecodable as exc:
            raise SigningRefused("undecodable", str(exc)) from None
        try:
            signing_address = self._keys.address(request.account)
        except UnknownAccount:
            raise SigningRefused("unknown_account", f"no key for {request.account!r}") from None
        check_signing(
            request.wanted,
            decoded,
            self._limits,
            Context(
                signing_address=signing_address,
                hot_wallet=self._keys.hot_wallet,
                deposit_addresses=self._deposit_addresses(request),
                token_contract=self._token_contract,
                signed_today=self._log.signed_today(request.wanted.purpose, day),
                now_ms=int(now.timestamp() * 1000),
            ),
        )
        txid = hashlib.sha256(bytes.fromhex(request.raw_data_hex)).digest()
        signature = self._keys.sign(request.account, txid)
        return SigningAnswer(request.request_id, txid=txid.hex(), signature=signature.hex())

    def _deposit_addresses(self, request: SigningRequest) -> Container[str]:
        """Our deposit addresses; for a top-up that names its deposit account, that account's
        address only, derived from our own key."""
        named = request.destination_account
        if named is None or request.wanted.purpose is not Purpose.SWEEP_TOPUP:
            return self._keys.deposit_addresses()
        if not named.startswith("deposit:"):
            raise SigningRefused("destination", "a top-up pays a deposit account")
        try:
            address = self._keys.address(named)
        except UnknownAccount:
            raise SigningRefused("unknown_account", f"no key for {named!r}") from None
        return frozenset({address})  # the top-up must pay exactly the address it names
