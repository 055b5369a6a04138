"""The money-out driver: moves approved refunds and payouts through signing, broadcast and
confirmation (docs/money-out.md, "Flows" and "Failure cases").

It runs on the leader worker, once a second (agents/money_out.py); everything it knows is in
PostgreSQL, so a new leader carries on where the last one stopped. Each transfer, each tick:

- **approved**: the transaction is built by the node (``triggersmartcontract``), stored as the
  transfer's next attempt, and only then sent to the signer (request id ``<id>:<attempt>``).
  Payouts wait for a batch: ``batch_size`` of them, or the oldest approved ``batch_seconds`` ago.
  Any transfer waits while the hot wallet, less what is already on its way out (signing, or
  broadcast and in no block: not yet off its balance at the head), does not cover it.
- **signing**: the signer's answer (recorded by agents/money_out.py) is awaited, the request
  re-sent if none came. A refusal fails the transfer (the amount returns to the balance). A
  signature is broadcast; once the node accepts it the transfer is ``broadcast`` and that
  transaction is the only one it will ever have.
- **broadcast**: followed with ``gettransactioninfobyid`` until its block is solidified
  (19 confirmations): then confirmed, or failed if it failed on chain (the TRX it burned is
  booked either way). A transaction gone from the chain (a reorg) is broadcast again, the same
  signed bytes (the same txid: it cannot be paid twice).

A transaction is given up only once the solidified block is past its expiration (plus one block
interval: java-tron may check inclusion against the parent block's time) and it is in no block:
from then on no block can include it. Only then is a new attempt built — after a refusal the node
would repeat (a bad signature, a contract that refuses) the transfer fails instead. A reorg of two
blocks or more that replaced the transaction's reference block loses it for good (the same bytes
are refused with ``TAPOS_ERROR``): it is rebuilt the same way, once it is expired. A failure of
one transfer is logged and counted; the transfer stays where it was and is tried again next tick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from prometheus_client import Counter, Gauge

from app.domain.events import parse_event
from app.domain.money import format_usdt
from app.domain.money_out import (
    Attempt,
    OutgoingTransfer,
    Receipt,
    Stage,
    Step,
    TransferKind,
)
from app.domain.signing import Purpose
from app.services.chain_sending import (
    FATAL_CODES,
    BroadcastOutcome,
    ChainReceipt,
    ChainView,
    UnsignedTransaction,
    expired_at_head,
    unminable,
)
from app.services.ports import EventPublisher, MoneyOutStore, SigningRequests, StaleTransfer

log = logging.getLogger(__name__)

TRANSFERS_FINISHED = Counter(
    "checkout_money_out_transfers",
    "Refunds and payouts that reached a final stage",
    ["kind", "stage"],
)
DRIVER_ERRORS = Counter(
    "checkout_money_out_driver_errors",
    "Steps of the money-out driver that failed (the transfer is tried again next tick)",
    ["error"],
)
REBROADCASTS = Counter(
    "checkout_money_out_rebroadcasts",
    "Signed transactions broadcast again (gone from the chain after a reorg, or not mined yet)",
)
BROADCAST_REFUSALS = Counter(
    "checkout_money_out_broadcast_refusals",
    "Broadcasts the node refused, by its code",
    ["code"],
)
HOT_WALLET_SHORT = Gauge(
    "checkout_hot_wallet_shortfall_usdt",
    "USDT the hot wallet lacks to pay the approved transfers waiting for it (0: none)",
)
REFUNDS_HELD = Gauge(
    "checkout_money_out_refunds_held",
    "Refunds of received money held back: a reorg took confirmed money of their invoice, so it "
    "no longer holds what its refunds would pay out (alert UnsettledPaymentOrphaned)",
)
OPEN_TRANSFERS = Gauge(
    "checkout_money_out_open_transfers", "Refunds and payouts not final, by stage", ["stage"]
)

MAX_ATTEMPTS: Final = 5


class SendingNode(Protocol):
    """The node calls the driver makes (app/adapters/tron/node.py ``TronNode``)."""

    async def chain_view(self) -> ChainView: ...

    async def build_token_transfer(
        self, owner: str, to: str, amount: int, token_contract: str, fee_limit: int
    ) -> UnsignedTransaction: ...

    async def broadcast_signed(self, attempt: Attempt, signature_hex: str) -> BroadcastOutcome: ...

    async def transaction_receipt(self, txid: str) -> ChainReceipt | None: ...

    async def token_balance(self, token_contract: str, owner: str) -> int: ...


@dataclass(frozen=True)
class DriverSettings:
    hot_wallet_address: str
    token_contract: str
    fee_limit_sun: int = 50_000_000  # 50 TRX of energy at most per transfer
    batch_size: int = 20
    batch_seconds: float = 30.0
    resend_after: float = 15.0  # seconds without an answer before the request is sent again
    rebroadcast_after: float = 9.0  # seconds between broadcasts of a transaction not mined
    max_per_tick: int = 200


class MoneyOutDriver:
    def __init__(
        self,
        store: MoneyOutStore,
        node: SendingNode,
        signing: SigningRequests,
        events: EventPublisher,
        settings: DriverSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._node = node
        self._signing = signing
        self._events = events
        self._settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._last_broadcast: dict[str, float] = {}
        self._last_refusal: dict[str, str] = {}
        self._held: set[str] = set()

    async def tick(self) -> None:
        """One pass over every open transfer; the outbox published before and after."""
        await self.publish_outbox()
        transfers = await self._store.open_transfers(self._settings.max_per_tick)
        for stage in (Stage.APPROVED, Stage.SIGNING, Stage.BROADCAST):
            OPEN_TRANSFERS.labels(stage.value).set(sum(t.stage is stage for t in transfers))
        if transfers:
            chain = await self._node.chain_view()
            await self._start(
                [t for t in transfers if t.stage is Stage.APPROVED and self._due(t, transfers)],
                promised=sum(t.amount for t in transfers if _not_on_chain_yet(t)),
            )
            for transfer in transfers:
                if transfer.stage is Stage.SIGNING:
                    await self._guarded(transfer, self._signing_step(transfer, chain))
                elif transfer.stage is Stage.BROADCAST:
                    await self._guarded(transfer, self._follow(transfer, chain))
        await self.publish_outbox()

    async def publish_outbox(self) -> None:
        while rows := await self._store.unpublished(500):
            await self._events.publish_events(parse_event(payload) for _, payload in rows)
            await self._store.mark_published([seq for seq, _ in rows])
            if len(rows) < 500:
                break

    # --- approved: build, record the attempt, ask the signer ----------------------------------

    def _due(self, transfer: OutgoingTransfer, transfers: Sequence[OutgoingTransfer]) -> bool:
        """Refunds go at once; payouts in batches (enough of them, or the oldest waited)."""
        if transfer.kind is TransferKind.REFUND:
            return True
        waiting = [
            t for t in transfers if t.kind is TransferKind.PAYOUT and t.stage is Stage.APPROVED
        ]
        if len(waiting) >= self._settings.batch_size:
            return True
        oldest = min(t.approved_at or t.created_at for t in waiting)
        return self._clock() - oldest >= timedelta(seconds=self._settings.batch_seconds)

    async def _start(self, transfers: Sequence[OutgoingTransfer], *, promised: int) -> None:
        """Build what the hot wallet covers. Its balance at the head does not show ``promised``
        yet (transfers being signed, or broadcast and in no block): counted as spent, or a
        transfer approved meanwhile would be built against money already on its way out — and
        fail on chain instead of waiting."""
        if not transfers:
            HOT_WALLET_SHORT.set(0)
            return
        available = await self._node.token_balance(
            self._settings.token_contract, self._settings.hot_wallet_address
        )
        reserved = promised
        shortfall = 0
        held = 0
        for transfer in transfers:
            if not await self._received_money_held(transfer):
                held += 1
                continue
            if reserved + transfer.amount > available:
                # Waits, approved, until sweeps refill the hot wallet (an alert watches the gauge).
                shortfall += transfer.amount
                continue
            reserved += transfer.amount
            await self._guarded(transfer, self._build(transfer))
        HOT_WALLET_SHORT.set(shortfall / 1_000_000)
        REFUNDS_HELD.set(held)

    async def _received_money_held(self, transfer: OutgoingTransfer) -> bool:
        """Whether a refund of the money its invoice received (never the merchant's balance) is
        still covered by it: a reorg may have taken a confirmed payment after the refund was
        asked for. Not covered, it waits, approved, until the payment is confirmed again (or
        an operator gives it up: ``checkout money-out give-up-refund``, docs/operations.md)."""
        if transfer.kind is not TransferKind.REFUND or transfer.source != "received":
            return True
        if transfer.invoice_id is None:
            return True
        context = await self._store.refund_context(transfer.merchant_id, transfer.invoice_id)
        # Every refund of received money not failed, this one included, against what is held.
        covered = context.covers_received_refunds()
        if covered:
            self._held.discard(transfer.transfer_id)
        elif transfer.transfer_id not in self._held:  # said once per hold, not every tick
            self._held.add(transfer.transfer_id)
            log.error(
                "refund %s of invoice %s held: the invoice holds %s USDT confirmed and unsettled,"
                " its refunds of received money ask %s",
                transfer.transfer_id,
                transfer.invoice_id,
                format_usdt(max(0, context.confirmed - (context.settled_gross or 0))),
                format_usdt(context.refunded_received),
            )
        return covered

    async def _build(self, transfer: OutgoingTransfer, *, earlier_lost: bool = False) -> None:
        number = (transfer.attempt.number if transfer.attempt else 0) + 1
        if number > MAX_ATTEMPTS:
            await self._save(
                transfer, transfer.fail(f"gave up after {MAX_ATTEMPTS} attempts", self._clock())
            )
            return
        unsigned = await self._node.build_token_transfer(
            self._settings.hot_wallet_address,
            transfer.to_address,
            transfer.amount,
            self._settings.token_contract,
            self._settings.fee_limit_sun,
        )
        attempt = Attempt(
            number=number,
            txid=unsigned.txid,
            raw_data=dict(unsigned.raw_data),
            raw_data_hex=unsigned.raw_data_hex,
            expiration_ms=unsigned.expiration_ms,
        )
        step = transfer.signing(attempt, self._clock(), earlier_lost=earlier_lost)
        await self._save(transfer, step)  # stored before the signer hears of it
        await self._ask_signer(step.state)

    async def _ask_signer(self, transfer: OutgoingTransfer) -> None:
        purpose = Purpose.REFUND if transfer.kind is TransferKind.REFUND else Purpose.PAYOUT
        assert transfer.attempt is not None
        await self._signing.send_signing_request(
            transfer.request_id,
            {
                "request_id": transfer.request_id,
                "account": "hot_wallet",
                "purpose": purpose.value,
                "kind": "trc20",
                "to": transfer.to_address,
                "amount": transfer.amount,
                "token_contract": self._settings.token_contract,
                "raw_data_hex": transfer.attempt.raw_data_hex,
            },
        )
        await self._store.mark_request_sent(transfer, self._clock())

    # --- signing: the signer's answer, then the broadcast -------------------------------------

    async def _signing_step(self, transfer: OutgoingTransfer, chain: ChainView) -> None:
        attempt = transfer.attempt
        if attempt is None:  # stored without its transaction: build it again
            await self._build(transfer)
            return
        answer = await self._store.answer(transfer.request_id)
        expired = expired_at_head(attempt.expiration_ms, chain)
        if answer is None:
            if expired:
                # The signer was away for longer than the transaction lives (it would refuse
                # it now): a fresh transaction, asked for under a new request id.
                await self._build(transfer)
                return
            sent = await self._store.request_sent_at(transfer.transfer_id)
            resend = timedelta(seconds=self._settings.resend_after)
            if sent is None or self._clock() - sent >= resend:
                await self._ask_signer(transfer)
            return
        if answer.refused == "expiration":
            await self._build(transfer)  # signed nothing: it came too late, not against policy
            return
        if answer.refused is not None:
            reason = f"the signer refused: {answer.refused}: {answer.message or ''}".strip()
            await self._save(transfer, transfer.fail(reason, self._clock()))
            return
        if answer.txid != attempt.txid or answer.signature is None:
            DRIVER_ERRORS.labels("signature_mismatch").inc()
            log.error(
                "money out: %s was signed as %s, not %s; left for an operator",
                transfer.request_id,
                answer.txid,
                attempt.txid,
            )
            return
        if await self._given_up(transfer, chain, answer.signature):
            return
        outcome = await self._node.broadcast_signed(attempt, answer.signature)
        self._last_broadcast[transfer.transfer_id] = self._monotonic()
        if outcome.accepted:
            signed = transfer.signed(answer.signature, self._clock())
            await self._save(transfer, signed.broadcast(self._clock()))
            return
        code = outcome.code or "UNKNOWN"
        BROADCAST_REFUSALS.labels(code).inc()
        self._last_refusal[transfer.transfer_id] = code
        log.warning(
            "money out: the node refused %s (%s): %s", transfer.request_id, code, outcome.message
        )

    async def _given_up(self, transfer: OutgoingTransfer, chain: ChainView, signature: str) -> bool:
        """Past its expiration at the solidified block and mined nowhere: the attempt's
        transaction can never be included. Build another, or fail after a fatal refusal."""
        attempt = transfer.attempt
        assert attempt is not None
        if chain.head_time_ms < attempt.expiration_ms:
            return False
        receipt = await self._node.transaction_receipt(attempt.txid)
        if receipt is not None:
            # Accepted after all (a broadcast whose answer was lost): follow it.
            signed = transfer.signed(signature, self._clock())
            await self._save(transfer, signed.broadcast(self._clock()))
            return True
        if not unminable(attempt.expiration_ms, chain):
            return True  # expired at the head; wait until that is final
        refusal = self._last_refusal.pop(transfer.transfer_id, None)
        if refusal in FATAL_CODES:
            await self._save(
                transfer,
                transfer.fail(f"the node refused the transaction: {refusal}", self._clock()),
            )
        else:
            await self._build(transfer)
        return True

    # --- broadcast: follow the transaction to its solidified block ----------------------------

    async def _follow(self, transfer: OutgoingTransfer, chain: ChainView) -> None:
        attempt = transfer.attempt
        assert attempt is not None and attempt.signature is not None
        found = await self._node.transaction_receipt(attempt.txid)
        now = self._clock()
        if found is None:
            if unminable(attempt.expiration_ms, chain):
                # Lost (a reorg replaced its reference block, or it expired unmined): it can
                # never be included now, so a new transaction pays the transfer instead.
                log.warning("money out: %s can no longer be mined; building it again", attempt.txid)
                await self._build(transfer, earlier_lost=True)
                return
            if transfer.receipt is not None:
                log.warning(
                    "money out: %s left the chain (reorg); broadcasting it again", attempt.txid
                )
                await self._save(transfer, Step(transfer.mined(None, now), (), None))
            await self._rebroadcast(transfer, attempt)
            return
        receipt = Receipt(
            block_number=found.block_number,
            fee_sun=found.fee,
            energy_usage=found.energy_usage_total,
            net_usage=found.net_usage,
            succeeded=found.result == "SUCCESS",
            result=found.result,
        )
        if receipt.block_number > chain.solid_number:
            if transfer.receipt is None or transfer.receipt.block_number != receipt.block_number:
                await self._save(transfer, Step(transfer.mined(receipt, now), (), None))
            return
        if receipt.succeeded:
            await self._save(transfer, transfer.confirm(receipt, now))
        else:
            await self._save(
                transfer, transfer.fail(f"failed on chain: {receipt.result}", now, receipt)
            )

    async def _rebroadcast(self, transfer: OutgoingTransfer, attempt: Attempt) -> None:
        last = self._last_broadcast.get(transfer.transfer_id, 0.0)
        if self._monotonic() - last < self._settings.rebroadcast_after:
            return
        assert attempt.signature is not None
        outcome = await self._node.broadcast_signed(attempt, attempt.signature)
        self._last_broadcast[transfer.transfer_id] = self._monotonic()
        REBROADCASTS.inc()
        if not outcome.accepted:
            BROADCAST_REFUSALS.labels(outcome.code or "UNKNOWN").inc()

    # --- helpers --------------------------------------------------------------------------

    async def _save(self, before: OutgoingTransfer, step: Step) -> None:
        await self._store.save(before, step)
        if step.state.stage in (Stage.CONFIRMED, Stage.FAILED):
            TRANSFERS_FINISHED.labels(step.state.kind.value, step.state.stage.value).inc()
            self._last_broadcast.pop(step.state.transfer_id, None)
            self._last_refusal.pop(step.state.transfer_id, None)

    async def _guarded(self, transfer: OutgoingTransfer, step: Any) -> None:
        try:
            await step
        except StaleTransfer:
            pass  # moved on elsewhere (an admin, or another leader): next tick reads it again
        except Exception as exc:
            DRIVER_ERRORS.labels(type(exc).__name__).inc()
            log.exception(
                "money out: %s stays %s until the next tick", transfer.transfer_id, transfer.stage
            )


def _not_on_chain_yet(transfer: OutgoingTransfer) -> bool:
    """Its amount is still in the hot wallet as of the head block: being signed, or broadcast and
    (as last seen) in no block."""
    return transfer.stage is Stage.SIGNING or (
        transfer.stage is Stage.BROADCAST and transfer.receipt is None
    )
