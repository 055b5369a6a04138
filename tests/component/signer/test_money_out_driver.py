"""The money-out driver (app/services/money_out_driver.py) against a scripted node and signer:
refunds and payouts built, signed, broadcast and followed to the solidified block; refusals,
reorgs, lost and expired transactions, batches and an empty hot wallet — each paid once at most."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.domain.errors import RefundNotAllowed, RefundNotFound
from app.domain.money_out import Stage, TransferKind, request_transfer
from app.services.money_out import MoneyOutRequests, MoneyOutSettings
from app.services.money_out_driver import DriverSettings, MoneyOutDriver
from app.services.ports import SigningAnswerRow
from tests.support.fakes import MemoryLedger, MemoryMoneyOut, RecordingPublisher
from tests.unit.domain.factories import new_settlement, usdt

pytestmark = pytest.mark.component

HOT = "TLrpNTBuCpGMrB9TyVwgEhNVRhtWEQPHh4"
USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
CUSTOMER = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


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
class Mined:
    block_number: int
    fee: int = 6_800_000
    energy_usage_total: int = 64_285
    net_usage: int = 345
    result: str = "SUCCESS"


@dataclass
class View:
    head_number: int = 100
    head_time_ms: int = 1_800_000_000_000
    solid_number: int = 82
    solid_time_ms: int = 1_800_000_000_000 - 54_000


@dataclass
class ScriptedNode:
    """A node whose chain the test moves: blocks every 3 s, solidified 18 behind."""

    view: View = field(default_factory=View)
    hot_wallet_usdt: int = 1_000_000 * 1_000_000
    built: list[Built] = field(default_factory=list)
    broadcasts: list[str] = field(default_factory=list)
    mined: dict[str, Mined] = field(default_factory=dict)  # txid → where it is now
    refuse_next: str | None = None

    def advance(self, blocks: int) -> None:
        self.view.head_number += blocks
        self.view.head_time_ms += 3_000 * blocks
        self.view.solid_number += blocks
        self.view.solid_time_ms += 3_000 * blocks

    async def chain_view(self) -> View:
        return View(**vars(self.view))

    async def build_token_transfer(
        self, owner: str, to: str, amount: int, token_contract: str, fee_limit: int
    ) -> Built:
        assert (owner, token_contract) == (HOT, USDT)
        raw = f"{owner}{to}{amount}{len(self.built)}".encode().hex()
        built = Built(
            txid=hashlib.sha256(bytes.fromhex(raw)).hexdigest(),
            raw_data={"expiration": self.view.head_time_ms + 60_000},
            raw_data_hex=raw,
            expiration_ms=self.view.head_time_ms + 60_000,
        )
        self.built.append(built)
        return built

    async def broadcast_signed(self, attempt: Any, signature_hex: str) -> Outcome:
        assert signature_hex == f"sig:{attempt.txid}"
        self.broadcasts.append(attempt.txid)
        if self.refuse_next is not None:
            code, self.refuse_next = self.refuse_next, None
            return Outcome(False, code, "refused")
        if self.view.head_time_ms >= attempt.expiration_ms:
            return Outcome(False, "TRANSACTION_EXPIRATION_ERROR", "expired")
        return Outcome(True)

    async def transaction_receipt(self, txid: str) -> Mined | None:
        return self.mined.get(txid)

    async def token_balance(self, token_contract: str, owner: str) -> int:
        return self.hot_wallet_usdt


@dataclass
class ScriptedSigner:
    """Records the requests; the test decides when (and what) the signer answers."""

    requests: list[dict[str, Any]] = field(default_factory=list)

    async def send_signing_request(self, request_id: str, body: Any) -> None:
        self.requests.append(dict(body))


class Rig:
    def __init__(self, *, batch_size: int = 20, batch_seconds: float = 30.0) -> None:
        self.ledger = MemoryLedger()
        self.store = MemoryMoneyOut(self.ledger)
        self.node = ScriptedNode()
        self.signer = ScriptedSigner()
        self.events = RecordingPublisher()
        self.now = T0
        self.driver = MoneyOutDriver(
            self.store,
            self.node,
            self.signer,
            self.events,
            DriverSettings(
                hot_wallet_address=HOT,
                token_contract=USDT,
                batch_size=batch_size,
                batch_seconds=batch_seconds,
                rebroadcast_after=0.0,
            ),
            clock=lambda: self.now,
        )

    async def fund(self, merchant_id: str = "mer_a", gross: str = "10000") -> None:
        await self.ledger.book_settlement(
            new_settlement(
                invoice_id=f"inv_{len(self.ledger.settled)}",
                merchant_id=merchant_id,
                gross_amount=usdt(gross),
                fee_percentage=Decimal("1"),
            )
        )

    async def request(self, kind: TransferKind, amount: str, number: int = 1) -> str:
        transfer_id = f"{kind.value[:2]}_{number}"
        step = request_transfer(
            transfer_id=transfer_id,
            kind=kind,
            merchant_id="mer_a",
            amount=usdt(amount),
            to_address=CUSTOMER,
            at=self.now,
            invoice_id="inv_0" if kind is TransferKind.REFUND else None,
            causation_id=f"test:{transfer_id}",
        )
        await self.store.request(step, idempotency_key=transfer_id, fingerprint="f")
        return transfer_id

    def sign_all(self) -> None:
        for request in self.signer.requests:
            txid = hashlib.sha256(bytes.fromhex(request["raw_data_hex"])).hexdigest()
            self.store.answers.setdefault(
                request["request_id"],
                SigningAnswerRow(request["request_id"], txid, f"sig:{txid}", None, None),
            )

    async def tick(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)
        await self.driver.tick()

    async def stage(self, transfer_id: str) -> Stage:
        transfer = await self.store.get(transfer_id)
        assert transfer is not None
        return transfer.stage

    def balance(self, account: str, currency: str = "USDT") -> int:
        return self.store.balance(account, currency)


async def test_a_refund_goes_from_signing_to_the_solidified_block() -> None:
    rig = Rig()
    await rig.fund()
    refund_id = await rig.request(TransferKind.REFUND, "2")
    await rig.tick()
    assert await rig.stage(refund_id) is Stage.SIGNING
    (request,) = rig.signer.requests
    assert request["purpose"] == "refund" and request["account"] == "hot_wallet"
    assert (request["to"], request["amount"], request["token_contract"]) == (
        CUSTOMER,
        2_000_000,
        USDT,
    )
    assert request["request_id"] == f"{refund_id}:1"

    await rig.tick()  # no answer yet: nothing else happens
    assert rig.node.broadcasts == []
    rig.sign_all()
    await rig.tick()
    assert await rig.stage(refund_id) is Stage.BROADCAST
    txid = rig.node.built[0].txid
    rig.node.mined[txid] = Mined(block_number=101)
    rig.node.advance(1)
    await rig.tick()
    transfer = await rig.store.get(refund_id)
    assert transfer is not None and transfer.stage is Stage.BROADCAST
    assert transfer.receipt is not None and transfer.receipt.block_number == 101
    rig.node.advance(18)  # block 101 solidified: 19 confirmations
    await rig.tick()
    assert await rig.stage(refund_id) is Stage.CONFIRMED
    assert rig.events.event_types() == ["RefundCreated", "RefundConfirmed"]
    assert rig.balance("merchant:mer_a:in_flight") == 0
    assert rig.balance("hot_wallet") == 2_000_000
    assert rig.balance("network_costs", "TRX") == -6_800_000
    assert rig.node.broadcasts == [txid]


async def test_a_refusal_of_the_signer_fails_the_transfer_and_returns_the_money() -> None:
    rig = Rig(batch_size=1)
    await rig.fund(gross="100000")
    before = rig.balance("merchant:mer_a")
    payout_id = await rig.request(TransferKind.PAYOUT, "60000")
    await rig.tick()
    request_id = rig.signer.requests[0]["request_id"]
    rig.store.answers[request_id] = SigningAnswerRow(
        request_id, None, None, "limit_per_transaction", "60000000000 is over the limit"
    )
    await rig.tick()
    transfer = await rig.store.get(payout_id)
    assert transfer is not None and transfer.stage is Stage.FAILED
    assert (
        transfer.failure_reason is not None and "limit_per_transaction" in transfer.failure_reason
    )
    assert rig.balance("merchant:mer_a") == before
    assert rig.events.event_types() == ["PayoutCreated", "PayoutFailed"]
    assert rig.node.broadcasts == []


async def test_a_reorg_gets_the_same_signed_bytes_broadcast_again_and_paid_once() -> None:
    rig = Rig()
    await rig.fund()
    refund_id = await rig.request(TransferKind.REFUND, "5")
    await rig.tick()
    rig.sign_all()
    await rig.tick()
    txid = rig.node.built[0].txid
    rig.node.mined[txid] = Mined(block_number=101)
    rig.node.advance(5)
    await rig.tick()
    del rig.node.mined[txid]  # a reorg took its block away
    await rig.tick()
    assert rig.node.broadcasts == [txid, txid]  # the same transaction, not a new one
    rig.node.mined[txid] = Mined(block_number=104)
    rig.node.advance(30)
    await rig.tick()
    assert await rig.stage(refund_id) is Stage.CONFIRMED
    assert len(rig.node.built) == 1 and len(rig.signer.requests) == 1


async def test_a_transaction_lost_for_good_is_replaced_only_once_it_cannot_be_mined() -> None:
    rig = Rig()
    await rig.fund()
    refund_id = await rig.request(TransferKind.REFUND, "5")
    await rig.tick()
    rig.sign_all()
    await rig.tick()
    first = rig.node.built[0]
    rig.node.mined[first.txid] = Mined(block_number=101)
    await rig.tick()
    del rig.node.mined[first.txid]  # reorged out, its reference block replaced (TAPOS)
    rig.node.refuse_next = "TAPOS_ERROR"
    rig.node.advance(10)  # expired at the head, not yet at the solidified block
    await rig.tick()
    assert len(rig.node.built) == 1, "replaced while it could still be mined"
    rig.node.advance(20)  # solidified past its expiration: still not + one block
    await rig.tick()
    assert len(rig.node.built) == 1, "replaced while a late block could still take it"
    rig.node.advance(10)
    await rig.tick()
    assert len(rig.node.built) == 2 and await rig.stage(refund_id) is Stage.SIGNING
    assert rig.signer.requests[-1]["request_id"] == f"{refund_id}:2"
    rig.sign_all()
    await rig.tick()
    second = rig.node.built[1]
    rig.node.mined[second.txid] = Mined(block_number=140)
    rig.node.advance(30)
    await rig.tick()
    assert await rig.stage(refund_id) is Stage.CONFIRMED
    assert rig.events.event_types() == ["RefundCreated", "RefundConfirmed"]
    assert rig.balance("hot_wallet") == 5_000_000  # paid once


async def test_a_signer_away_longer_than_a_transaction_lives_gets_a_fresh_one() -> None:
    rig = Rig()
    await rig.fund()
    refund_id = await rig.request(TransferKind.REFUND, "5")
    await rig.tick()
    rig.node.advance(25)  # 75 s without an answer: the first transaction expired unsigned
    await rig.tick()
    assert [r["request_id"] for r in rig.signer.requests] == [f"{refund_id}:1", f"{refund_id}:2"]
    rig.sign_all()
    await rig.tick()
    assert await rig.stage(refund_id) is Stage.BROADCAST
    assert rig.node.broadcasts == [rig.node.built[1].txid]


async def test_a_transfer_failed_on_chain_returns_the_amount_and_books_what_it_burned() -> None:
    rig = Rig()
    await rig.fund()
    before = rig.balance("merchant:mer_a")
    refund_id = await rig.request(TransferKind.REFUND, "5")
    await rig.tick()
    rig.sign_all()
    await rig.tick()
    txid = rig.node.built[0].txid
    rig.node.mined[txid] = Mined(block_number=101, fee=2_000_000, result="OUT_OF_ENERGY")
    rig.node.advance(20)
    await rig.tick()
    transfer = await rig.store.get(refund_id)
    assert transfer is not None and transfer.stage is Stage.FAILED
    assert transfer.failure_reason == "failed on chain: OUT_OF_ENERGY"
    assert rig.balance("merchant:mer_a") == before
    assert rig.balance("network_costs", "TRX") == -2_000_000


async def test_payouts_wait_for_their_batch_and_for_the_hot_wallet() -> None:
    rig = Rig(batch_size=3, batch_seconds=60)
    await rig.fund()
    first = await rig.request(TransferKind.PAYOUT, "10", 1)
    await rig.request(TransferKind.PAYOUT, "10", 2)
    await rig.tick()
    assert rig.signer.requests == []  # two of three, and the oldest waited 1 s
    await rig.request(TransferKind.PAYOUT, "10", 3)
    rig.node.hot_wallet_usdt = usdt("25")  # enough for two of them
    await rig.tick()
    assert len(rig.signer.requests) == 2
    assert await rig.stage(first) is Stage.SIGNING
    rig.node.hot_wallet_usdt = usdt("1000")
    await rig.tick(61)  # the last one's batch is due by time now (the others asked again)
    assert {r["request_id"] for r in rig.signer.requests} == {"pa_1:1", "pa_2:1", "pa_3:1"}


async def test_transfers_not_yet_on_chain_count_against_the_hot_wallet() -> None:
    """The hot wallet's balance at the head does not show the transfers being signed, or
    broadcast and in no block yet: their amounts are promised. A payout approved meanwhile waits
    rather than being built against them (it would fail on chain, the hot wallet short)."""
    rig = Rig(batch_size=1)
    await rig.fund()
    rig.node.hot_wallet_usdt = usdt("25")
    await rig.request(TransferKind.PAYOUT, "10", 1)
    await rig.request(TransferKind.PAYOUT, "10", 2)
    await rig.tick()
    assert len(rig.signer.requests) == 2  # 20 of the 25 promised, none of it moved yet
    third = await rig.request(TransferKind.PAYOUT, "10", 3)
    await rig.tick()
    assert await rig.stage(third) is Stage.APPROVED and len(rig.signer.requests) == 2
    rig.sign_all()
    await rig.tick()  # the first two broadcast, in no block yet
    assert await rig.stage(third) is Stage.APPROVED
    for built in rig.node.built:
        rig.node.mined[built.txid] = Mined(block_number=101)
    rig.node.hot_wallet_usdt = usdt("5")  # mined: the head shows them spent
    rig.node.advance(1)
    await rig.tick()
    await rig.tick()
    assert await rig.stage(third) is Stage.APPROVED  # 5 left: still short
    rig.node.hot_wallet_usdt = usdt("1005")  # a sweep refilled it
    await rig.tick()
    assert await rig.stage(third) is Stage.SIGNING


async def held_refund(rig: Rig, refund_id: str = "rf_late") -> None:
    """A refund of the 5 USDT inv_late received after it expired, asked for before a reorg took
    them, so held by the driver (not built, not signed)."""
    rig.store.invoice_status["inv_late"] = "expired"
    rig.store.invoice_confirmed["inv_late"] = usdt("5")
    step = request_transfer(
        transfer_id=refund_id,
        kind=TransferKind.REFUND,
        merchant_id="mer_a",
        amount=usdt("5"),
        to_address=CUSTOMER,
        at=rig.now,
        invoice_id="inv_late",
        source="received",
        causation_id=f"test:{refund_id}",
    )
    await rig.store.request(step, idempotency_key=refund_id, fingerprint="f")
    rig.store.invoice_confirmed["inv_late"] = 0
    await rig.tick()


async def test_a_refund_of_received_money_a_reorg_took_waits_until_the_money_is_back() -> None:
    rig = Rig()
    await held_refund(rig, "re_late")
    await rig.tick()
    assert await rig.stage("re_late") is Stage.APPROVED  # held, not built, not signed
    assert rig.signer.requests == [] and rig.node.built == []
    # The transfer is included and confirmed again: the refund goes.
    rig.store.invoice_confirmed["inv_late"] = usdt("5")
    await rig.tick()
    assert await rig.stage("re_late") is Stage.SIGNING
    assert [request["amount"] for request in rig.signer.requests] == [5_000_000]


def requests(rig: Rig) -> MoneyOutRequests:
    return MoneyOutRequests(rig.store, MoneyOutSettings(hot_wallet_address=HOT))


async def test_the_operator_gives_up_a_held_refund_and_the_merchant_is_told() -> None:
    rig = Rig()
    await held_refund(rig)
    gone = "the customer's transfer was dropped by a reorg and never sent again"

    failed = await requests(rig).give_up_held_refund("rf_late", by="ops-ana", reason=gone, now=T0)

    assert failed.stage is Stage.FAILED
    assert failed.failure_reason == f"given up by the operator (ops-ana): {gone}"
    [(_, event, _)] = [
        entry for entry in rig.store.outbox if entry[1]["event_type"] == "RefundFailed"
    ]
    assert event["data"]["reason"] == failed.failure_reason
    assert event["data"]["invoice_id"] == "inv_late"
    # The same command again changes nothing; the driver never sends it, even with the money back.
    again = await requests(rig).give_up_held_refund("rf_late", by="ops-ana", reason=gone, now=T0)
    assert again.version == failed.version
    rig.store.invoice_confirmed["inv_late"] = usdt("5")
    await rig.tick()
    assert await rig.stage("rf_late") is Stage.FAILED and rig.signer.requests == []


async def test_only_a_held_refund_of_received_money_can_be_given_up() -> None:
    rig = Rig()
    await held_refund(rig)
    give_up = requests(rig).give_up_held_refund
    with pytest.raises(RefundNotFound):
        await give_up("rf_nope", by="ops", reason="gone", now=T0)
    with pytest.raises(RefundNotAllowed, match="a reason of 1 to 300"):
        await give_up("rf_late", by="ops", reason="x" * 301, now=T0)
    # Covered again (the payment came back): it is being sent, not given up.
    rig.store.invoice_confirmed["inv_late"] = usdt("5")
    with pytest.raises(RefundNotAllowed, match="not held"):
        await give_up("rf_late", by="ops", reason="gone", now=T0)
    await rig.tick()
    assert await rig.stage("rf_late") is Stage.SIGNING
    with pytest.raises(RefundNotAllowed, match="only a refund of received money waiting"):
        await give_up("rf_late", by="ops", reason="gone", now=T0)
