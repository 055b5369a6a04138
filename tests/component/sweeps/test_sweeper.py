"""The sweeper (app/services/sweeps.py) against an in-memory store, a scripted signer and a small
chain that charges energy and bandwidth as the simulator does: addresses topped up and swept,
dust left waiting, OUT_OF_ENERGY recorded and topped up again, a second sweep paying bandwidth,
lost and refused transactions — and the reconciliation (app/services/reconcile.py) of what
that booked against the chain."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.domain.ledger import CUSTOMER_FUNDS, HOT_WALLET, NETWORK_COSTS, Movement
from app.domain.reconcile import owner_funding
from app.domain.sweeps import (
    OPEN,
    BookedTransaction,
    ChainTransaction,
    Sweep,
    SweepStage,
    SweepStep,
    TxKind,
    deposit_account,
)
from app.services.ports import (
    DepositPosition,
    SigningAnswerRow,
    StaleSweep,
    SweepCandidate,
    TransferRow,
)
from app.services.reconcile import Reconciler
from app.services.sweeps import Sweeper, SweepSettings

pytestmark = pytest.mark.component

HOT = "THotWallet"
USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ENERGY_TO_HOLDER = 64_285
ENERGY_PRICE = 100
BANDWIDTH_PRICE = 1_000
TX_BYTES = 345
FREE_BYTES = 600


def usdt(whole: int) -> int:
    return whole * 1_000_000


# --- the chain --------------------------------------------------------------------------------


@dataclass
class Account:
    trx: int = 0
    usdt: int = 0
    activated: bool = False
    free_used: int = 0


@dataclass(frozen=True)
class Built:
    txid: str
    raw_data: dict[str, Any]
    raw_data_hex: str
    expiration_ms: int


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Receipt:
    block_number: int
    fee: int
    energy_usage_total: int
    energy_fee: int
    net_usage: int
    net_fee: int
    result: str


@dataclass(frozen=True)
class View:
    head_number: int
    head_time_ms: int
    solid_number: int
    solid_time_ms: int


@dataclass(frozen=True)
class Prices:
    energy_fee: int = ENERGY_PRICE
    transaction_fee: int = BANDWIDTH_PRICE
    free_net_limit: int = FREE_BYTES


@dataclass
class Chain:
    """Blocks every 3 s, solidified 18 behind; a transfer's energy and bandwidth burned from the
    sender's TRX as the simulator does it (OUT_OF_ENERGY moves nothing and burns up to the fee
    limit); the hot wallet's own bandwidth free, a TRX transfer creating its recipient 1.1 TRX."""

    head: int = 100
    head_time_ms: int = 1_800_000_000_000
    accounts: dict[str, Account] = field(default_factory=dict)
    pending: list[ChainTransaction] = field(default_factory=list)
    receipts: dict[str, Receipt] = field(default_factory=dict)
    built: list[Built] = field(default_factory=list)
    broadcasts: list[str] = field(default_factory=list)
    energy_estimates: list[int] = field(default_factory=list)  # what the next calls answer

    def account(self, address: str) -> Account:
        return self.accounts.setdefault(address, Account())

    def mine(self, blocks: int = 1) -> None:
        for n in range(blocks):
            self.head += 1
            self.head_time_ms += 3_000
            if n == 0:
                for tx in self.pending:
                    self.receipts[tx.txid] = self._execute(tx)
                self.pending.clear()

    def drop_pending(self) -> list[str]:
        """What a reorg does to transactions nobody broadcasts again: gone."""
        gone = [tx.txid for tx in self.pending]
        self.pending.clear()
        return gone

    def _execute(self, tx: ChainTransaction) -> Receipt:
        if tx.kind is TxKind.TOPUP:
            to = self.account(tx.raw_data["to"])
            fee = 0 if to.activated else 1_100_000
            hot = self.account(HOT)
            hot.trx -= tx.amount + fee
            to.trx += tx.amount
            to.activated = True
            return Receipt(self.head, fee, 0, 0, 0, 0, "SUCCESS")
        sender = self.account(tx.raw_data["owner"])
        net_usage, net_fee = TX_BYTES, 0
        if FREE_BYTES - sender.free_used >= TX_BYTES:
            sender.free_used += TX_BYTES
        else:
            net_usage, net_fee = 0, TX_BYTES * BANDWIDTH_PRICE
            sender.trx -= net_fee
        energy = ENERGY_TO_HOLDER if self.account(HOT).usdt else 130_285
        cost = energy * ENERGY_PRICE
        if cost > tx.fee_limit or cost > sender.trx:
            burned = min(tx.fee_limit, sender.trx)
            sender.trx -= burned
            result = "OUT_OF_ENERGY"
            return Receipt(
                self.head, burned + net_fee, burned // 100, burned, net_usage, net_fee, result
            )
        sender.trx -= cost
        sender.usdt -= tx.amount
        self.account(HOT).usdt += tx.amount
        return Receipt(self.head, cost + net_fee, energy, cost, net_usage, net_fee, "SUCCESS")

    # --- the node's calls (SweepNode, ChainBalances) ---

    async def chain_view(self) -> View:
        return View(self.head, self.head_time_ms, self.head - 18, self.head_time_ms - 54_000)

    def _build(self, **raw: Any) -> Built:
        text = f"{len(self.built)}:{sorted(raw.items())}".encode().hex()
        built = Built(
            txid=hashlib.sha256(bytes.fromhex(text)).hexdigest(),
            raw_data=raw,
            raw_data_hex=text,
            expiration_ms=self.head_time_ms + 60_000,
        )
        self.built.append(built)
        return built

    async def build_trx_transfer(self, owner: str, to: str, amount_sun: int) -> Built:
        assert owner == HOT
        return self._build(owner=owner, to=to, amount=amount_sun)

    async def build_token_transfer(
        self, owner: str, to: str, amount: int, token_contract: str, fee_limit: int
    ) -> Built:
        assert (to, token_contract) == (HOT, USDT)
        return self._build(owner=owner, to=to, amount=amount, fee_limit=fee_limit)

    async def broadcast_signed(self, tx: ChainTransaction, signature_hex: str) -> Outcome:
        assert signature_hex == f"sig:{tx.txid}"
        self.broadcasts.append(tx.txid)
        if tx.txid in self.receipts or any(p.txid == tx.txid for p in self.pending):
            return Outcome(True, "DUP_TRANSACTION_ERROR")
        if self.head_time_ms >= tx.expiration_ms:
            return Outcome(False, "TRANSACTION_EXPIRATION_ERROR", "expired")
        self.pending.append(tx)
        return Outcome(True)

    async def transaction_receipt(self, txid: str) -> Receipt | None:
        return self.receipts.get(txid)

    async def token_balance(self, token_contract: str, owner: str) -> int:
        return self.account(owner).usdt

    async def trx_balance(self, address: str) -> int:
        return self.account(address).trx

    async def transfer_energy(self, owner: str, to: str, amount: int, token_contract: str) -> int:
        if self.energy_estimates:
            return self.energy_estimates.pop(0)
        return ENERGY_TO_HOLDER if self.account(HOT).usdt else 130_285

    async def chain_prices(self) -> Prices:
        return Prices()

    async def free_bandwidth(self, address: str) -> int | None:
        account = self.account(address)
        return FREE_BYTES - account.free_used if account.activated else None


# --- the store ------------------------------------------------------------------------------------


@dataclass
class Deposit:
    index: int
    invoice_id: str
    merchant_id: str
    settled: int


class MemorySweeps:
    """``SweepStore`` and ``LedgerPositions`` in memory, with PostgreSQL's rules: one open sweep
    per address, a stale save refused, a movement booked once."""

    def __init__(self) -> None:
        self.deposits: dict[str, Deposit] = {}
        self.sweeps: dict[str, Sweep] = {}
        self.movements: dict[tuple[str, str], Movement] = {}
        self.booked: list[BookedTransaction] = []
        self.answers: dict[str, SigningAnswerRow] = {}
        self.sent_at: dict[str, datetime] = {}
        self.now = T0

    def settle(self, address: str, amount: int, merchant: str = "mer_a") -> None:
        held = self.deposits.get(address)
        if held is not None:  # more customer funds booked on the same address
            held.settled += amount
            return
        index = len(self.deposits)
        self.deposits[address] = Deposit(index, f"inv_{index}", merchant, amount)

    def balance(self, account: str, currency: str) -> int:
        return sum(
            entry.amount
            for movement in self.movements.values()
            for entry in movement.entries
            if entry.account == account and entry.currency == currency
        )

    def swept(self, address: str) -> int:
        return sum(
            s.amount
            for s in self.sweeps.values()
            if s.deposit_address == address and s.stage is SweepStage.CONFIRMED
        )

    def open_for(self, address: str) -> bool:
        return any(s.deposit_address == address and s.stage in OPEN for s in self.sweeps.values())

    # SweepStore
    async def candidates(
        self,
        min_amount: int,
        limit: int,
        retry_failed_after: timedelta,
        exclude: Sequence[str] = (),
    ) -> list[SweepCandidate]:
        out = []
        for address, deposit in self.deposits.items():
            held = deposit.settled - self.swept(address)
            failed_recently = any(
                s.deposit_address == address
                and s.stage is SweepStage.FAILED
                and s.finished_at is not None
                and s.finished_at > self.now - retry_failed_after
                for s in self.sweeps.values()
            )
            if (
                held >= min_amount
                and address not in exclude
                and not self.open_for(address)
                and not failed_recently
            ):
                out.append(
                    SweepCandidate(
                        address, deposit.index, deposit.invoice_id, deposit.merchant_id, held
                    )
                )
        return out[:limit]

    async def backlog(self, min_amount: int) -> tuple[int, int]:
        held = [d.settled - self.swept(a) for a, d in self.deposits.items()]
        due = [amount for amount in held if amount >= min_amount]
        return len(due), sum(due)

    async def create(self, sweep: Sweep) -> bool:
        if self.open_for(sweep.deposit_address):
            return False
        self.sweeps[sweep.sweep_id] = sweep
        return True

    async def open_sweeps(self, limit: int) -> list[Sweep]:
        return [s for s in self.sweeps.values() if s.stage in OPEN][:limit]

    async def save(self, before: Sweep, step: SweepStep) -> None:
        if self.sweeps[before.sweep_id].version != before.version:
            raise StaleSweep(before.sweep_id)
        self.sweeps[before.sweep_id] = step.state
        if step.movement is not None and step.movement.entries:
            self.movements.setdefault((step.movement.kind, step.movement.reference), step.movement)
        if step.booked is not None:
            self.booked.append(step.booked)

    async def mark_request_sent(self, sweep: Sweep, at: datetime) -> None:
        self.sent_at[sweep.sweep_id] = at

    async def request_sent_at(self, sweep_id: str) -> datetime | None:
        return self.sent_at.get(sweep_id)

    async def answer(self, request_id: str) -> SigningAnswerRow | None:
        return self.answers.get(request_id)

    async def pending_payouts(self) -> int:
        return 0

    # LedgerPositions
    async def hot_wallet(self) -> tuple[int, int]:
        return -self.balance(HOT_WALLET, "USDT"), -self.balance(HOT_WALLET, "TRX")

    async def deposits_positions(self) -> list[DepositPosition]:
        return [
            DepositPosition(
                address=address,
                invoice_id=d.invoice_id,
                merchant_id=d.merchant_id,
                held=d.settled - self.swept(address),
                swept=self.swept(address),
                received=d.settled,
                trx=-self.balance(deposit_account(address), "TRX"),
            )
            for address, d in self.deposits.items()
        ]

    async def in_flight(self) -> list[TransferRow]:
        rows = []
        for s in self.sweeps.values():
            if s.stage in OPEN and s.tx is not None and s.tx.broadcast_accepted:
                topup = s.tx.kind is TxKind.TOPUP
                rows.append(
                    TransferRow(
                        "sweep_topup" if topup else "sweep",
                        s.sweep_id,
                        s.tx.txid,
                        HOT if topup else s.deposit_address,
                        s.deposit_address if topup else HOT,
                        "TRX" if topup else "USDT",
                        s.tx.amount,
                        s.tx.fee_limit,
                    )
                )
        return rows

    async def record_funding(self, usdt: int, trx_sun: int, reference: str) -> bool:
        movement = owner_funding(usdt, trx_sun, reference)
        booked = (movement.kind, reference) not in self.movements
        self.movements.setdefault((movement.kind, reference), movement)
        return booked


class Positions:
    """``LedgerPositions`` over the memory store (every address, as ``--all``)."""

    def __init__(self, store: MemorySweeps) -> None:
        self._store = store

    async def hot_wallet(self) -> tuple[int, int]:
        return await self._store.hot_wallet()

    async def deposits(self, everything: bool) -> list[DepositPosition]:
        return await self._store.deposits_positions()

    async def in_flight(self) -> list[TransferRow]:
        return await self._store.in_flight()

    async def record_funding(self, usdt: int, trx_sun: int, reference: str) -> bool:
        return await self._store.record_funding(usdt, trx_sun, reference)


@dataclass
class Signer:
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def send_signing_request(self, request_id: str, body: Any) -> None:
        assert body["request_id"] == request_id
        self.requests.append(dict(body))


class Rig:
    def __init__(self, *, min_usdt: int = 5, batch_size: int = 20) -> None:
        self.store = MemorySweeps()
        self.chain = Chain()
        self.signer = Signer()
        hot = self.chain.account(HOT)
        hot.trx, hot.usdt, hot.activated = 10_000_000_000, usdt(100_000), True
        self.ids = (f"sw_{n}" for n in range(1, 1000))
        self.min_amount = usdt(min_usdt)
        self.sweeper = Sweeper(
            self.store,
            self.chain,
            self.signer,
            SweepSettings(
                hot_wallet_address=HOT,
                token_contract=USDT,
                min_amount=usdt(min_usdt),
                batch_size=batch_size,
                rebroadcast_after=0.0,
            ),
            clock=lambda: self.store.now,
            new_id=lambda: next(self.ids),
        )

    async def funded(self) -> None:
        await self.store.record_funding(usdt(100_000), 10_000_000_000, "genesis")

    def pay(self, address: str, amount: int, merchant: str = "mer_a") -> None:
        """Paid on chain and settled (the settlement's own booking is outside this test)."""
        self.chain.account(address).usdt += amount
        self.store.settle(address, amount, merchant)

    def sign_all(self, refuse: str | None = None) -> None:
        for request in self.signer.requests:
            txid = hashlib.sha256(bytes.fromhex(request["raw_data_hex"])).hexdigest()
            answer = (
                SigningAnswerRow(request["request_id"], None, None, refuse, "no")
                if refuse
                else SigningAnswerRow(request["request_id"], txid, f"sig:{txid}", None, None)
            )
            self.store.answers.setdefault(request["request_id"], answer)

    async def tick(self, seconds: float = 1.0) -> None:
        self.store.now += timedelta(seconds=seconds)
        await self.sweeper.tick()

    async def run(self, rounds: int = 12) -> None:
        """Sign what is asked, mine and solidify, tick: until nothing is open."""
        for _ in range(rounds):
            await self.tick()
            self.sign_all()
            await self.tick()
            self.chain.mine(1)
            await self.tick()
            self.chain.mine(19)
            await self.tick()
            due, _ = await self.store.backlog(self.min_amount)
            if not await self.store.open_sweeps(100) and not due:
                return

    def sweeps_of(self, address: str) -> list[Sweep]:
        return [s for s in self.store.sweeps.values() if s.deposit_address == address]

    async def reconcile(self) -> Any:
        return await Reconciler(
            Positions(self.store),
            self.chain,
            hot_wallet_address=HOT,
            token_contract=USDT,
            payout_fee_limit=50_000_000,
        ).run(everything=True)


# --- the tests ------------------------------------------------------------------------------------


async def test_paid_addresses_are_topped_up_and_swept_and_dust_waits() -> None:
    rig = Rig(min_usdt=5)
    await rig.funded()
    rig.pay("TAddrA", usdt(25))
    rig.pay("TAddrB", usdt(30), merchant="mer_b")
    rig.pay("TDust", usdt(2))
    await rig.tick()

    topups = [r for r in rig.signer.requests if r["purpose"] == "sweep_topup"]
    assert sorted(r["to"] for r in topups) == ["TAddrA", "TAddrB"]
    assert {r["destination_account"] for r in topups} == {"deposit:0", "deposit:1"}
    # 64,285 energy × 100 sun + 10 %, rounded up to 0.01 TRX; the 600 free bytes pay bandwidth.
    assert {r["amount"] for r in topups} == {7_080_000}

    await rig.run()
    for address, amount in (("TAddrA", usdt(25)), ("TAddrB", usdt(30))):
        (done,) = rig.sweeps_of(address)
        assert done.stage is SweepStage.CONFIRMED and done.amount == amount
        costs = done.costs
        assert (costs.topped_up, costs.topup_fees) == (7_080_000, 1_100_000)
        assert (costs.sweep_fees, costs.energy_usage, costs.net_usage) == (6_428_500, 64_285, 345)
        assert rig.chain.account(address).usdt == 0
    assert rig.sweeps_of("TDust") == []  # below SWEEP_MIN_USDT: waits
    assert rig.chain.account(HOT).usdt == usdt(100_055)
    assert rig.store.balance(HOT_WALLET, "USDT") == -usdt(100_055)
    assert rig.store.balance(CUSTOMER_FUNDS, "USDT") == usdt(55)
    assert rig.store.balance(NETWORK_COSTS, "TRX") == -2 * (1_100_000 + 6_428_500)
    assert {b.tx.kind for b in rig.store.booked} == {TxKind.TOPUP, TxKind.SWEEP}

    result = await rig.reconcile()
    assert result.ok and result.differences == [] and result.in_flight == []
    assert {(p.address, p.currency): p.chain for p in result.positions}[("TAddrA", "TRX")] == (
        7_080_000 - 6_428_500
    )


async def test_out_of_energy_burns_is_recorded_and_a_larger_top_up_follows() -> None:
    rig = Rig()
    await rig.funded()
    rig.pay("TAddrA", usdt(25))
    rig.chain.energy_estimates = [30_000]  # the first estimate is short
    await rig.run()

    (done,) = rig.sweeps_of("TAddrA")
    assert done.stage is SweepStage.CONFIRMED
    results = [(b.tx.kind, b.receipt.result) for b in rig.store.booked]
    assert results == [
        (TxKind.TOPUP, "SUCCESS"),
        (TxKind.SWEEP, "OUT_OF_ENERGY"),
        (TxKind.TOPUP, "SUCCESS"),
        (TxKind.SWEEP, "SUCCESS"),
    ]
    burned_short = 3_300_000  # 30,000 energy + 10 %: the fee limit, all burned
    assert done.costs.out_of_energy == 1
    # The failed attempt took 345 of the 600 free bytes: the second one buys its bandwidth.
    assert done.costs.sweep_fees == burned_short + 345_000 + 6_428_500
    assert done.costs.net_fee == 345_000
    # The second top-up bought the real energy with the larger margin (135 %).
    second_topup = rig.store.booked[2].tx.amount
    assert second_topup >= ENERGY_TO_HOLDER * ENERGY_PRICE * 135 // 100
    assert rig.chain.account("TAddrA").usdt == 0
    assert (await rig.reconcile()).ok


async def test_a_second_sweep_of_an_address_pays_its_bandwidth() -> None:
    rig = Rig()
    await rig.funded()
    rig.pay("TAddrA", usdt(25))
    await rig.run()
    left = rig.chain.account("TAddrA").trx
    rig.pay("TAddrA", usdt(40))  # more customer funds on the same address, hours later
    await rig.run()

    first, second = sorted(rig.sweeps_of("TAddrA"), key=lambda s: s.sweep_id)
    assert first.costs.net_fee == 0 and first.costs.net_usage == TX_BYTES  # free bandwidth
    assert second.stage is SweepStage.CONFIRMED and second.amount == usdt(40)
    topup = next(b for b in rig.store.booked if b.sweep_id == second.sweep_id)
    # 255 free bytes left: 350 bytes of bandwidth bought, less what the first sweep left there.
    missing = 7_080_000 + 350_000 - left
    assert topup.tx.amount == -(-missing // 10_000) * 10_000  # rounded up to 0.01 TRX
    assert second.costs.net_fee == TX_BYTES * BANDWIDTH_PRICE and second.costs.net_usage == 0
    assert second.costs.topup_fees == 0  # the address exists now: no activation
    assert (await rig.reconcile()).ok


async def test_a_top_up_lost_before_a_block_is_sent_again_then_rebuilt_once_expired() -> None:
    rig = Rig()
    await rig.funded()
    rig.pay("TAddrA", usdt(25))
    await rig.tick()
    rig.sign_all()
    await rig.tick()
    (first,) = rig.chain.drop_pending()
    # Still valid: the same signed bytes again, not a new transaction.
    await rig.tick()
    assert rig.chain.broadcasts.count(first) == 2 and len(rig.chain.built) == 1
    rig.chain.drop_pending()
    # Expired as of the solidified block and mined nowhere: only now a new top-up.
    rig.chain.mine(45)
    await rig.tick()
    (sweep,) = rig.sweeps_of("TAddrA")
    assert sweep.tx is not None and sweep.tx.number == 2 and sweep.tx.txid != first
    assert len(rig.chain.built) == 2
    await rig.run()
    (done,) = rig.sweeps_of("TAddrA")
    assert done.stage is SweepStage.CONFIRMED and done.costs.topped_up == 7_080_000
    assert (await rig.reconcile()).ok


async def test_a_refused_top_up_fails_the_sweep_and_the_address_waits() -> None:
    rig = Rig()
    await rig.funded()
    rig.pay("TAddrA", usdt(25))
    await rig.tick()
    rig.sign_all(refuse="limit_per_day")
    await rig.tick()
    (failed,) = rig.sweeps_of("TAddrA")
    assert failed.stage is SweepStage.FAILED
    assert failed.failure_reason is not None and "limit_per_day" in failed.failure_reason
    assert rig.chain.broadcasts == [] and rig.store.movements.keys() == {
        ("owner_funding", "genesis")
    }
    await rig.tick(seconds=60)
    assert len(rig.sweeps_of("TAddrA")) == 1  # not again within the hour
    await rig.tick(seconds=3600)
    assert len(rig.sweeps_of("TAddrA")) == 2


async def test_a_batch_limits_the_sweeps_open_at_once() -> None:
    rig = Rig(batch_size=2)
    await rig.funded()
    for n in range(5):
        rig.pay(f"TAddr{n}", usdt(10 + n))
    await rig.tick()
    assert len(await rig.store.open_sweeps(100)) == 2
    await rig.run(rounds=20)
    assert all(rig.chain.account(f"TAddr{n}").usdt == 0 for n in range(5))
    stages = Counter(s.stage for s in rig.store.sweeps.values())
    assert stages == {SweepStage.CONFIRMED: 5}
    assert (await rig.reconcile()).ok


async def test_a_difference_the_books_cannot_explain_fails_the_reconciliation() -> None:
    rig = Rig()
    await rig.funded()
    rig.pay("TAddrA", usdt(25))
    await rig.run()
    rig.chain.account(HOT).usdt -= 1  # moved by a key outside the platform
    result = await rig.reconcile()
    assert not result.ok
    (difference,) = result.differences
    assert (difference.address, difference.currency, difference.difference) == (HOT, "USDT", -1)


async def test_an_address_the_chain_does_not_back_is_set_aside_and_the_others_go_on() -> None:
    rig = Rig(batch_size=1)
    await rig.funded()
    rig.store.settle("TEmpty", usdt(25))  # in the books, nothing on chain
    rig.pay("TAddrA", usdt(25))
    await rig.tick()
    assert rig.store.sweeps == {}  # looked at, set aside: not swept blind
    await rig.run()
    assert [s.stage for s in rig.sweeps_of("TAddrA")] == [SweepStage.CONFIRMED]
    assert rig.sweeps_of("TEmpty") == []
    result = await rig.reconcile()
    (difference,) = result.differences
    assert (difference.address, difference.currency, difference.difference) == (
        "TEmpty",
        "USDT",
        -usdt(25),
    )
