"""Sweeps on the leader: settled USDT moved from deposit addresses into the hot wallet.

docs/money-out.md, "Sweeps". Every ``SWEEP_INTERVAL`` the leader (agents/sweeps.py):

1. **starts** sweeps, up to ``SWEEP_BATCH_SIZE`` open at once: deposit addresses holding at
   least ``SWEEP_MIN_USDT`` of customer funds per the ledger (settled, not swept yet) that the
   chain confirms (smaller amounts wait: a sweep costs the same energy whatever it moves). Only
   money in the ledger is swept: a late or unsettled payment stays on its address until it is
   resolved, so the ledger always covers what moved;
2. **plans** a due sweep: the transfer's energy (a constant call) at the chain's energy price with
   a margin, plus its bandwidth unless the address's free allowance covers it, less the TRX the
   address holds already. The hot wallet sends the rest (a ``sweep_topup`` signed by the signer),
   or, with enough there, the sweep goes at once;
3. **follows** each transaction as the money-out driver does: built by the node, stored, then
   sent to the signer; broadcast once signed; followed with ``gettransactioninfobyid`` to its
   solidified block and booked from its receipt (fee, energy, bandwidth). A transaction is
   replaced only once it can never be mined (in no block and expired as of the solidified block);
   a reorg that took it out gets the same signed bytes again;
4. after a top-up, the USDT transfer from the deposit address (signer purpose ``sweep``, the
   address's own key). ``OUT_OF_ENERGY`` moves nothing and burns TRX: the burn is booked and the
   sweep is topped up again with a larger margin.

Everything is in PostgreSQL, so a new leader carries on; a failing sweep is logged and counted and
tried again next tick. Metrics: the backlog, the hot wallet's balances, pending refunds and
payouts (the alert compares them), what sweeps burned.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from prometheus_client import Counter, Gauge

from app.domain.sweeps import (
    OPEN,
    ChainTransaction,
    Sweep,
    SweepReceipt,
    SweepStage,
    SweepStep,
    TopUpPlan,
    TxKind,
    new_sweep,
)
from app.services.chain_sending import (
    FATAL_CODES,
    BroadcastOutcome,
    ChainReceipt,
    ChainView,
    UnsignedTransaction,
    expired_at_head,
    unminable,
)
from app.services.ports import SigningRequests, StaleSweep, SweepStore

log = logging.getLogger(__name__)

SWEEP_BACKLOG = Gauge(
    "checkout_sweep_backlog_addresses",
    "Deposit addresses with at least SWEEP_MIN_USDT settled and not swept",
)
SWEEP_BACKLOG_USDT = Gauge(
    "checkout_sweep_backlog_usdt", "USDT settled on deposit addresses at or above SWEEP_MIN_USDT"
)
OPEN_SWEEPS = Gauge("checkout_sweeps_open", "Sweeps not final, by stage", ["stage"])
SWEEPS_FINISHED = Counter("checkout_sweeps", "Sweeps that reached a final stage", ["stage"])
SWEPT_USDT = Counter("checkout_swept_usdt", "USDT moved into the hot wallet by sweeps")
TRX_BURNED = Counter(
    "checkout_sweep_burned_trx",
    "TRX burned by sweeps' solidified transactions (top-ups: the hot wallet; sweeps: the address)",
    ["kind"],
)
ENERGY_USED = Counter("checkout_sweep_energy", "Energy used by sweep transactions")
BANDWIDTH_USED = Counter(
    "checkout_sweep_bandwidth_bytes", "Free bandwidth (bytes) used by sweeps' transactions"
)
OUT_OF_ENERGY = Counter(
    "checkout_sweep_out_of_energy", "Sweep transactions that ran out of energy (topped up again)"
)
SWEEP_ERRORS = Counter(
    "checkout_sweep_errors", "Sweep steps that failed (tried again next tick)", ["error"]
)
BROADCAST_REFUSALS = Counter(
    "checkout_sweep_broadcast_refusals", "Sweep broadcasts the node refused, by its code", ["code"]
)
SHORT_ADDRESSES = Gauge(
    "checkout_sweep_short_addresses",
    "Deposit addresses holding less on chain than the ledger's customer funds (set aside)",
)
HOT_WALLET_USDT = Gauge("checkout_hot_wallet_usdt", "USDT the hot wallet holds on chain (head)")
HOT_WALLET_TRX = Gauge("checkout_hot_wallet_trx", "TRX the hot wallet holds on chain (head)")
MEASURED_AT = Gauge(
    "checkout_sweep_measured_timestamp_seconds",
    "When this worker (as the leader) last measured the gauges above: alerts use the fresh one",
)
PENDING_PAYOUTS = Gauge(
    "checkout_money_out_pending_usdt",
    "USDT of refunds and payouts requested, approved or being signed: what the hot wallet owes",
)


class Prices(Protocol):
    @property
    def energy_fee(self) -> int: ...
    @property
    def transaction_fee(self) -> int: ...
    @property
    def free_net_limit(self) -> int: ...


class SweepNode(Protocol):
    """The node calls sweeps make (app/adapters/tron/sweep_node.py)."""

    async def chain_view(self) -> ChainView: ...

    async def build_token_transfer(
        self, owner: str, to: str, amount: int, token_contract: str, fee_limit: int
    ) -> UnsignedTransaction: ...

    async def build_trx_transfer(
        self, owner: str, to: str, amount_sun: int
    ) -> UnsignedTransaction: ...

    async def broadcast_signed(
        self, tx: ChainTransaction, signature_hex: str
    ) -> BroadcastOutcome: ...

    async def transaction_receipt(self, txid: str) -> ChainReceipt | None: ...

    async def token_balance(self, token_contract: str, owner: str) -> int: ...

    async def trx_balance(self, address: str) -> int: ...

    async def transfer_energy(
        self, owner: str, to: str, amount: int, token_contract: str
    ) -> int: ...

    async def chain_prices(self) -> Prices: ...

    async def free_bandwidth(self, address: str) -> int | None:
        """Bytes of free bandwidth the address has left now; None if it was never activated."""
        ...


@dataclass(frozen=True)
class SweepSettings:
    hot_wallet_address: str
    token_contract: str
    min_amount: int = 20_000_000  # SWEEP_MIN_USDT: smaller balances wait (dust)
    batch_size: int = 20  # SWEEP_BATCH_SIZE: sweeps open at once
    resend_after: float = 15.0  # seconds without an answer before the request is sent again
    rebroadcast_after: float = 9.0  # seconds between broadcasts of a transaction not mined
    retry_failed_after: float = 3600.0  # an address whose sweep failed waits this long
    short_retry_after: float = 600.0  # an address holding less than its books waits this long
    max_attempts: int = 8  # transactions one sweep may build (top-ups and sweeps)


class Sweeper:
    def __init__(
        self,
        store: SweepStore,
        node: SweepNode,
        signing: SigningRequests,
        settings: SweepSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        new_id: Callable[[], str] = lambda: f"sw_{uuid.uuid4().hex[:24]}",
    ) -> None:
        self._store = store
        self._node = node
        self._signing = signing
        self._settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._new_id = new_id
        self._last_broadcast: dict[str, float] = {}
        self._last_refusal: dict[str, str] = {}
        self._short: dict[str, float] = {}  # address → when to look at it again

    async def tick(self) -> None:
        """Start what is due (up to the batch), move every open sweep one step, measure."""
        settings = self._settings
        sweeps = await self._store.open_sweeps(settings.batch_size + 100)
        room = settings.batch_size - len(sweeps)
        if room > 0:
            sweeps += await self._start(room)
        for stage in OPEN:
            OPEN_SWEEPS.labels(stage.value).set(sum(s.stage is stage for s in sweeps))
        if sweeps:
            chain = await self._node.chain_view()
            for sweep in sweeps:
                await self._guarded(sweep, self._drive(sweep, chain))
        await self._measure()

    # --- starting: addresses whose chain balance holds the customer funds booked on them -----

    async def _start(self, room: int) -> list[Sweep]:
        settings = self._settings
        now = self._monotonic()
        self._short = {address: until for address, until in self._short.items() if until > now}
        candidates = await self._store.candidates(
            settings.min_amount,
            room,
            timedelta(seconds=settings.retry_failed_after),
            exclude=tuple(self._short),
        )
        started = []
        for candidate in candidates:
            try:
                on_chain = await self._node.token_balance(
                    settings.token_contract, candidate.deposit_address
                )
            except Exception as exc:
                SWEEP_ERRORS.labels(type(exc).__name__).inc()
                log.exception("sweeps: no balance for %s; next tick", candidate.deposit_address)
                continue
            amount = min(on_chain, candidate.held)
            if amount < settings.min_amount:
                # In the books, not on chain: `checkout ledger reconcile` shows it. Never swept
                # blind, and set aside a while so that it does not hold up the others.
                self._short[candidate.deposit_address] = now + settings.short_retry_after
                log.warning(
                    "sweeps: %s holds %d on chain, %d per the ledger; not swept",
                    candidate.deposit_address,
                    on_chain,
                    candidate.held,
                )
                continue
            sweep = new_sweep(
                sweep_id=self._new_id(),
                deposit_address=candidate.deposit_address,
                derivation_index=candidate.derivation_index,
                invoice_id=candidate.invoice_id,
                merchant_id=candidate.merchant_id,
                amount=amount,
                at=self._clock(),
            )
            if await self._store.create(sweep):
                started.append(sweep)
        SHORT_ADDRESSES.set(len(self._short))
        return started

    async def _drive(self, sweep: Sweep, chain: ChainView) -> None:
        tx = sweep.tx
        if tx is None:
            if sweep.stage is SweepStage.DUE:
                await self._plan(sweep)
            else:  # topped up: the USDT transfer, within the energy budget planned with it
                await self._build_sweep(sweep, sweep.energy_budget)
        elif not tx.broadcast_accepted:
            await self._signing_step(sweep, tx, chain)
        else:
            await self._follow(sweep, tx, chain)

    # --- due: what the sweep will burn, and the top-up it needs -------------------------------

    async def _plan(self, sweep: Sweep) -> None:
        settings = self._settings
        prices = await self._node.chain_prices()
        energy = await self._node.transfer_energy(
            sweep.deposit_address,
            settings.hot_wallet_address,
            sweep.amount,
            settings.token_contract,
        )
        free = await self._node.free_bandwidth(sweep.deposit_address)
        plan = TopUpPlan(
            energy=energy,
            energy_price=prices.energy_fee,
            bandwidth_price=prices.transaction_fee,
            # Never activated: the top-up activates it, with the whole daily allowance.
            free_bandwidth=prices.free_net_limit if free is None else free,
            trx_on_address=await self._node.trx_balance(sweep.deposit_address),
            out_of_energy=sweep.costs.out_of_energy,
        )
        if plan.topup:
            await self._build_topup(sweep, plan.topup, plan.energy_budget)
        else:
            await self._build_sweep(sweep, plan.energy_budget)

    async def _build_topup(
        self, sweep: Sweep, amount: int, energy_budget: int, *, earlier_lost: bool = False
    ) -> None:
        if await self._too_many(sweep):
            return
        unsigned = await self._node.build_trx_transfer(
            self._settings.hot_wallet_address, sweep.deposit_address, amount
        )
        tx = _transaction(TxKind.TOPUP, sweep.next_number, unsigned, amount)
        step = sweep.top_up(tx, energy_budget, self._clock(), earlier_lost=earlier_lost)
        await self._save(sweep, step)  # stored before the signer hears of it
        await self._ask_signer(step.state)

    async def _build_sweep(
        self, sweep: Sweep, fee_limit: int, *, earlier_lost: bool = False
    ) -> None:
        if await self._too_many(sweep):
            return
        settings = self._settings
        unsigned = await self._node.build_token_transfer(
            sweep.deposit_address,
            settings.hot_wallet_address,
            sweep.amount,
            settings.token_contract,
            fee_limit,
        )
        tx = _transaction(TxKind.SWEEP, sweep.next_number, unsigned, sweep.amount, fee_limit)
        step = sweep.send(tx, self._clock(), earlier_lost=earlier_lost)
        await self._save(sweep, step)
        await self._ask_signer(step.state)

    async def _rebuild(self, sweep: Sweep, tx: ChainTransaction, *, earlier_lost: bool) -> None:
        """A new transaction for one that can never be mined: the same transfer, a new txid."""
        if tx.kind is TxKind.TOPUP:
            await self._build_topup(
                sweep, tx.amount, sweep.energy_budget, earlier_lost=earlier_lost
            )
        else:
            await self._build_sweep(sweep, tx.fee_limit, earlier_lost=earlier_lost)

    async def _too_many(self, sweep: Sweep) -> bool:
        if sweep.next_number <= self._settings.max_attempts:
            return False
        reason = f"gave up after {self._settings.max_attempts} transactions"
        await self._save(sweep, sweep.fail(reason, self._clock()))
        return True

    async def _ask_signer(self, sweep: Sweep) -> None:
        settings = self._settings
        body = sweep.signing_request(settings.hot_wallet_address, settings.token_contract)
        await self._signing.send_signing_request(sweep.request_id, body)
        await self._store.mark_request_sent(sweep, self._clock())

    # --- signing: the signer's answer, then the broadcast -------------------------------------

    async def _signing_step(self, sweep: Sweep, tx: ChainTransaction, chain: ChainView) -> None:
        answer = await self._store.answer(sweep.request_id)
        if answer is None:
            if expired_at_head(tx.expiration_ms, chain):
                # The signer was away longer than the transaction lives: a fresh one.
                await self._rebuild(sweep, tx, earlier_lost=False)
                return
            sent = await self._store.request_sent_at(sweep.sweep_id)
            if sent is None or self._clock() - sent >= timedelta(
                seconds=self._settings.resend_after
            ):
                await self._ask_signer(sweep)
            return
        if answer.refused == "expiration":
            await self._rebuild(sweep, tx, earlier_lost=False)  # too late, not against policy
            return
        if answer.refused is not None:
            reason = f"the signer refused: {answer.refused}: {answer.message or ''}".strip()
            await self._save(sweep, sweep.fail(reason, self._clock()))
            return
        if answer.txid != tx.txid or answer.signature is None:
            SWEEP_ERRORS.labels("signature_mismatch").inc()
            log.error(
                "sweeps: %s was signed as %s, not %s; left for an operator",
                sweep.request_id,
                answer.txid,
                tx.txid,
            )
            return
        if await self._given_up(sweep, tx, chain, answer.signature):
            return
        outcome = await self._node.broadcast_signed(tx, answer.signature)
        self._last_broadcast[sweep.sweep_id] = self._monotonic()
        if outcome.accepted:
            now = self._clock()
            await self._save(sweep, _same(sweep.signed(answer.signature, now).broadcast(now)))
            return
        code = outcome.code or "UNKNOWN"
        BROADCAST_REFUSALS.labels(code).inc()
        self._last_refusal[sweep.sweep_id] = code
        log.warning("sweeps: the node refused %s (%s): %s", sweep.request_id, code, outcome.message)

    async def _given_up(
        self, sweep: Sweep, tx: ChainTransaction, chain: ChainView, signature: str
    ) -> bool:
        """Past its expiration and mined nowhere, as of the solidified block: the transaction
        can never be included. Build another, or stop after a refusal that would repeat."""
        if chain.head_time_ms < tx.expiration_ms:
            return False
        now = self._clock()
        if await self._node.transaction_receipt(tx.txid) is not None:
            # Accepted after all (a broadcast whose answer was lost): follow it.
            await self._save(sweep, _same(sweep.signed(signature, now).broadcast(now)))
            return True
        if not unminable(tx.expiration_ms, chain):
            return True  # expired at the head; wait until that is final
        refusal = self._last_refusal.pop(sweep.sweep_id, None)
        if refusal == "BANDWITH_ERROR" and tx.kind is TxKind.SWEEP:
            # The address could not pay the bandwidth: more TRX, with a larger margin.
            await self._save(sweep, sweep.needs_more_trx(now))
        elif refusal in FATAL_CODES:
            await self._save(sweep, sweep.fail(f"the node refused it: {refusal}", now))
        else:
            await self._rebuild(sweep, tx, earlier_lost=False)
        return True

    # --- broadcast: follow the transaction to its solidified block ----------------------------

    async def _follow(self, sweep: Sweep, tx: ChainTransaction, chain: ChainView) -> None:
        found = await self._node.transaction_receipt(tx.txid)
        now = self._clock()
        if found is None:
            if unminable(tx.expiration_ms, chain):
                log.warning("sweeps: %s can no longer be mined; building it again", tx.txid)
                await self._rebuild(sweep, tx, earlier_lost=True)
                return
            if tx.block_number is not None:
                log.warning("sweeps: %s left the chain (reorg); broadcasting it again", tx.txid)
                moved = sweep.mined(None, now)
                await self._save(sweep, _same(moved))
                sweep, tx = moved, moved.tx or tx
            await self._rebroadcast(sweep, tx)
            return
        receipt = SweepReceipt(
            block_number=found.block_number,
            fee=found.fee,
            energy_usage=found.energy_usage_total,
            energy_fee=found.energy_fee,
            net_usage=found.net_usage,
            net_fee=found.net_fee,
            result=found.result,
        )
        if receipt.block_number > chain.solid_number:
            if tx.block_number != receipt.block_number:
                await self._save(sweep, _same(sweep.mined(receipt.block_number, now)))
            return
        await self._solidified(sweep, tx, receipt, now)

    async def _solidified(
        self, sweep: Sweep, tx: ChainTransaction, receipt: SweepReceipt, now: datetime
    ) -> None:
        if tx.kind is TxKind.TOPUP:
            if not receipt.succeeded:
                reason = f"the top-up failed on chain: {receipt.result}"
                await self._save(sweep, sweep.fail(reason, now, receipt))
                return
            step = sweep.topped_up(receipt, now)
            await self._save(sweep, step)
            await self._build_sweep(step.state, step.state.energy_budget)
        elif receipt.succeeded:
            await self._save(sweep, sweep.confirm(receipt, now))
        elif receipt.result == "OUT_OF_ENERGY":
            OUT_OF_ENERGY.inc()
            log.warning("sweeps: %s ran out of energy; topping up again", tx.txid)
            await self._save(sweep, sweep.needs_more_trx(now, receipt))
        else:
            reason = f"failed on chain: {receipt.result}"
            await self._save(sweep, sweep.fail(reason, now, receipt))

    async def _rebroadcast(self, sweep: Sweep, tx: ChainTransaction) -> None:
        last = self._last_broadcast.get(sweep.sweep_id, 0.0)
        if self._monotonic() - last < self._settings.rebroadcast_after:
            return
        assert tx.signature is not None
        outcome = await self._node.broadcast_signed(tx, tx.signature)
        self._last_broadcast[sweep.sweep_id] = self._monotonic()
        if not outcome.accepted:
            BROADCAST_REFUSALS.labels(outcome.code or "UNKNOWN").inc()

    # --- helpers ------------------------------------------------------------------------------

    async def _save(self, before: Sweep, step: SweepStep) -> None:
        await self._store.save(before, step)
        booked = step.booked
        if booked is not None:
            receipt = booked.receipt
            TRX_BURNED.labels(booked.tx.kind.value).inc(receipt.fee / 1_000_000)
            ENERGY_USED.inc(receipt.energy_usage)
            BANDWIDTH_USED.inc(receipt.net_usage)
        state = step.state
        if state.stage not in OPEN:
            SWEEPS_FINISHED.labels(state.stage.value).inc()
            if state.stage is SweepStage.CONFIRMED:
                SWEPT_USDT.inc(state.amount / 1_000_000)
            self._last_broadcast.pop(state.sweep_id, None)
            self._last_refusal.pop(state.sweep_id, None)

    async def _guarded(self, sweep: Sweep, step: Awaitable[None]) -> None:
        try:
            await step
        except StaleSweep:
            pass  # moved on elsewhere (another leader): next tick reads it again
        except Exception as exc:
            SWEEP_ERRORS.labels(type(exc).__name__).inc()
            log.exception("sweeps: %s stays %s until the next tick", sweep.sweep_id, sweep.stage)

    async def _measure(self) -> None:
        """The backlog, the hot wallet's balances, and what it owes (for the alert)."""
        settings = self._settings
        try:
            addresses, total = await self._store.backlog(settings.min_amount)
            SWEEP_BACKLOG.set(addresses)
            SWEEP_BACKLOG_USDT.set(total / 1_000_000)
            PENDING_PAYOUTS.set(await self._store.pending_payouts() / 1_000_000)
            hot = settings.hot_wallet_address
            usdt = await self._node.token_balance(settings.token_contract, hot)
            HOT_WALLET_USDT.set(usdt / 1_000_000)
            HOT_WALLET_TRX.set(await self._node.trx_balance(hot) / 1_000_000)
            MEASURED_AT.set_to_current_time()
        except Exception as exc:  # metrics only: the sweeps went on
            SWEEP_ERRORS.labels(f"measure_{type(exc).__name__}").inc()
            log.warning("sweeps: metrics not updated this tick: %r", exc)


def _transaction(
    kind: TxKind, number: int, unsigned: UnsignedTransaction, amount: int, fee_limit: int = 0
) -> ChainTransaction:
    return ChainTransaction(
        kind=kind,
        number=number,
        txid=unsigned.txid,
        raw_data=dict(unsigned.raw_data),
        raw_data_hex=unsigned.raw_data_hex,
        expiration_ms=unsigned.expiration_ms,
        amount=amount,
        fee_limit=fee_limit,
    )


def _same(state: Sweep) -> SweepStep:
    """A change of the transaction's progress that books nothing."""
    return SweepStep(state, None, None)
