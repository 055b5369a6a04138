"""Money out when things fail, on the real stack: two workers, the signer in its own process,
Kafka, PostgreSQL, Redis and the Tron simulator in manual mode (docs/money-out.md, "Failure
cases"). One platform for the whole module; the tests run in this order and leave it fit for
the next.

1. Payouts reorged out before their 19 confirmations: a reorg that keeps a transaction, returns
   it to the pool or drops it gets the same signed bytes mined again; one that replaces the
   transaction's reference block (TaPoS) loses it for good, and only once it can no longer be
   mined does the driver build a new one.
2. kill -9 in the middle of a batch of ten payouts: of the signer while its requests are
   outstanding (started again on its signed log), then of the worker that leads (the other takes
   the money-out driver over; the killed one stays down).
3. After all of that, a scan of Kafka, PostgreSQL, Redis and every log for the development
   mnemonic's private material finds none — and does find what a positive control planted.

Each payout is paid exactly once: one successful transaction of its own, the payee richer by
exactly the sum, the merchant's balance down by exactly the sum with nothing left outgoing, the
journal balanced, and its events PayoutCreated then PayoutPaid once in the event store.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest
import redis

from app.adapters.signer.keys import DEV_MNEMONIC, dev_keys
from tests.integration.money_out.key_scan import (
    SETTINGS,
    deposit_indexes,
    key_material,
    plant_in_kafka,
    scan_files,
    scan_kafka,
    scan_postgres,
    scan_redis,
)
from tests.integration.money_out.support import (
    DATABASE_URL,
    SignerProcess,
    answers_recorded,
    api,
    assert_paid_once,
    balance,
    block_time_ms,
    follow_all,
    journal_balances,
    money_out_platform,
    new_payee,
    receipt,
    request_payouts,
    settled_invoice,
    transfer_rows,
    wait_for_stage,
)
from tests.support.platform import Platform
from tests.support.processes import LOG_DIR, WorkerProcess, eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

BATCH = 10
AMOUNTS = [Decimal("1.01") + Decimal(i) / 100 for i in range(BATCH)]  # 1.01 … 1.10: 10.55 USDT
TAPOS_WINDOW = 65_536
EXPIRY_MARGIN_MS = 3_000  # java-tron may include a transaction up to one slot after it expired


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, SignerProcess]]:
    with money_out_platform(
        tmp_path_factory.mktemp("money-out-failures"),
        # Ten approved payouts make a batch at once; fewer go together 5 s after the first.
        PAYOUT_BATCH_SIZE=str(BATCH),
        PAYOUT_BATCH_SECONDS="5",
        MONEY_OUT_INTERVAL="0.3",
        # Kafka hands a SIGKILLed worker's partitions (and the leadership) over only once its
        # session expired: KAFKA_SESSION_TIMEOUT, 8 s by default.
    ) as running:
        yield running


def assert_debited_once(platform: Platform, before: dict[str, Decimal], total: Decimal) -> None:
    after = balance(platform)
    assert after["available"] == before["available"] - total
    assert after["outgoing"] == 0
    assert journal_balances() == {"TRX": 0, "USDT": 0}


# --- 1. reorgs ---------------------------------------------------------------------------------


def broadcast_rows(ids: list[str]) -> dict[str, dict[str, Any]]:
    """Wait, without mining, until every transfer is broadcast: their transactions are pending
    together and go into the next block."""

    def probe() -> dict[str, dict[str, Any]] | None:
        rows = transfer_rows(ids)
        return rows if all(row["stage"] == "broadcast" for row in rows.values()) else None

    return eventually(probe, timeout=60, what=f"{ids} broadcast", every=0.1)


def wait_mined_in(ids: list[str], block: int) -> None:
    """The driver has seen each transaction in ``block`` (so a reorg takes it off a block)."""
    eventually(
        lambda: all(row["block_number"] == block for row in transfer_rows(ids).values()),
        timeout=30,
        what=f"the driver to see {ids} in block {block}",
        every=0.1,
    )


def tapos_refusals(platform: Platform) -> float:
    """Broadcasts the node refused with TAPOS_ERROR, as the workers count them."""
    total = 0.0
    for internal in platform.internal_urls:
        metrics = httpx.get(f"{internal}/metrics", timeout=5).text
        found = re.search(
            r'^checkout_money_out_broadcast_refusals_total\{code="TAPOS_ERROR"\} (\S+)$',
            metrics,
            re.MULTILINE,
        )
        total += float(found.group(1)) if found else 0.0
    return total


def test_payouts_kept_returned_to_the_pool_or_dropped_by_a_reorg_are_mined_again_once(
    stack: tuple[Platform, SignerProcess],
) -> None:
    platform, _ = stack
    settled_invoice(platform, "30", "30")
    payee = new_payee()
    before = balance(platform)
    platform.sim.mine(1)  # a fresh head: the transactions built next live 60 s from it
    amounts = [Decimal("1.5"), Decimal("2.5"), Decimal("3.5")]
    ids = [payout["id"] for payout in request_payouts(platform, payee, amounts)]
    rows = broadcast_rows(ids)
    kept, returned, dropped = (str(rows[i]["txid"]) for i in ids)
    mined = platform.sim.mine(1)["blocks"][0]
    assert {kept, returned, dropped} <= set(mined["transactions"])
    wait_mined_in(ids, mined["number"])

    # One block replaced: the first transaction stays in it, the second goes back to the pool,
    # the third is dropped (the node forgets it, as if it had never been broadcast).
    reorg = platform.sim.post("/sim/reorg", {"depth": 1, "delay": {returned: 1}, "drop": [dropped]})
    assert returned in reorg["returned_to_pool"] and reorg["dropped"] == [dropped]
    assert not {kept, returned, dropped} & set(reorg["lost"])
    assert receipt(platform, kept)["blockNumber"] == mined["number"]
    assert receipt(platform, returned) == {} and receipt(platform, dropped) == {}

    reorged = time.monotonic()
    paid = follow_all(platform, [f"/api/v1/payouts/{i}" for i in ids])
    print(f"\nreorg (kept, returned, dropped): all paid {time.monotonic() - reorged:.1f} s later")
    # The same signed transactions, mined again: never a second one for any payout.
    assert [payout["tx_hash"] for payout in paid] == [kept, returned, dropped]
    assert {row["attempt"] for row in transfer_rows(ids).values()} == {1}
    assert_paid_once(platform, paid, payee, Decimal(0))
    assert_debited_once(platform, before, sum(amounts, Decimal(0)))


def test_a_payout_lost_with_its_reference_block_is_rebuilt_only_once_it_cannot_be_mined(
    stack: tuple[Platform, SignerProcess],
) -> None:
    platform, _ = stack
    settled_invoice(platform, "30", "30")
    payee = new_payee()
    before = balance(platform)
    platform.sim.mine(1)
    (payout,) = request_payouts(platform, payee, ["4.25"])
    first = broadcast_rows([payout["id"]])[payout["id"]]
    first_txid, expiration = str(first["txid"]), int(first["expiration_ms"])
    mined = platform.sim.mine(1)["blocks"][0]
    assert first_txid in mined["transactions"]
    wait_mined_in([payout["id"]], mined["number"])

    # Replace every block from the transaction's reference block on: its TaPoS no longer
    # matches, java-tron drops it and refuses the same bytes from now on.
    head = int(platform.sim.status()["head"]["number"])
    low = int(first["raw_data"]["ref_block_bytes"], 16)
    depth = (head - low) % TAPOS_WINDOW + 1
    assert depth >= 2
    reorg = platform.sim.post("/sim/reorg", {"depth": depth})
    assert first_txid in reorg["lost"]
    reorged = time.monotonic()
    refusals = tapos_refusals(platform)

    # Until the solidified block is past its expiration, the driver cannot know that no block
    # will ever include it: it keeps that transaction (broadcast again: refused, TAPOS_ERROR).
    while time.time() * 1000 < expiration + EXPIRY_MARGIN_MS + 500:
        platform.sim.mine(1)
        time.sleep(1)
        row = transfer_rows([payout["id"]])[payout["id"]]
        assert (row["attempt"], row["txid"], row["stage"]) == (1, first_txid, "broadcast"), row
    # Expired at the head now, not yet at the solidified block: still the same transaction.
    platform.sim.mine(1)
    time.sleep(1.5)  # several ticks of the driver
    solid = int(platform.sim.status()["solidified"]["number"])
    assert block_time_ms(platform, solid) <= expiration + EXPIRY_MARGIN_MS
    assert transfer_rows([payout["id"]])[payout["id"]]["attempt"] == 1
    assert tapos_refusals(platform) > refusals

    # 19 blocks: the solidified block is past the expiration; only now a new transaction.
    platform.sim.mine(19)
    solid = int(platform.sim.status()["solidified"]["number"])
    assert block_time_ms(platform, solid) > expiration + EXPIRY_MARGIN_MS
    (paid,) = follow_all(platform, [f"/api/v1/payouts/{payout['id']}"])
    print(f"\nreorg (reference block replaced): paid {time.monotonic() - reorged:.1f} s later")
    row = transfer_rows([payout["id"]])[payout["id"]]
    assert row["attempt"] == 2 and paid["tx_hash"] == row["txid"] != first_txid
    assert receipt(platform, first_txid) == {}  # the lost one was never mined again
    assert_paid_once(platform, [paid], payee, Decimal(0))
    assert_debited_once(platform, before, Decimal("4.25"))


# --- 2. kill -9 in a payout batch ----------------------------------------------------------------


def leading_worker(platform: Platform) -> WorkerProcess | None:
    """The worker that leads: the one whose chain watcher has seen the node's current head (the
    watcher and the money-out driver are both timers of Faust's leader only)."""
    head = int(platform.sim.status()["head"]["number"])
    leading = []
    for worker, internal in zip(platform.workers, platform.internal_urls, strict=True):
        metrics = httpx.get(f"{internal}/metrics", timeout=5).text
        seen = re.search(r"^checkout_chain_node_head_height (\S+)$", metrics, re.MULTILINE)
        if seen is not None and int(float(seen.group(1))) == head:
            leading.append(worker)
    return leading[0] if len(leading) == 1 else None


def test_the_signer_killed_in_a_payout_batch_pays_each_payout_once(
    stack: tuple[Platform, SignerProcess],
) -> None:
    platform, signer = stack
    settled_invoice(platform, "60", "60")
    payee = new_payee()
    before = balance(platform)
    platform.sim.mine(1)

    ids = [payout["id"] for payout in request_payouts(platform, payee, AMOUNTS)]
    requests = {f"{i}:1" for i in ids}
    # kill -9 as soon as the signer has written its first answer of the batch to its signed log
    # (before publishing it): the rest of the batch is still on its topic, or not yet sent.
    eventually(
        lambda: signer.answered(requests) > 0, timeout=30, what="a first answer", every=0.002
    )
    signer.kill()
    killed = time.monotonic()
    signed_before_kill = signer.answered(requests)
    assert 0 < signed_before_kill < BATCH, f"the signer answered {signed_before_kill} before"
    signer.start()  # the same signed log

    paid = follow_all(platform, [f"/api/v1/payouts/{i}" for i in ids], timeout=120)
    print(
        f"\nsigner killed after {signed_before_kill} of {BATCH} answers;"
        f" all paid {time.monotonic() - killed:.1f} s later"
    )
    # The transactions the signer was asked for first, answered after its restart: none rebuilt.
    assert {row["attempt"] for row in transfer_rows(ids).values()} == {1}
    assert_paid_once(platform, paid, payee, Decimal(0))
    assert_debited_once(platform, before, sum(AMOUNTS, Decimal(0)))


def test_the_leader_killed_in_a_payout_batch_pays_each_payout_once(
    stack: tuple[Platform, SignerProcess],
) -> None:
    platform, _ = stack
    settled_invoice(platform, "60", "60")
    payee = new_payee()
    before = balance(platform)
    platform.sim.mine(1)
    leader = eventually(lambda: leading_worker(platform), timeout=30, what="the leading worker")

    ids = [payout["id"] for payout in request_payouts(platform, payee, AMOUNTS)]
    # kill -9 of the leader as soon as it broadcast a first payout of the batch: the others are
    # being signed, or signed and not yet broadcast.
    wait_for_stage(ids, "broadcast")
    leader.kill()
    killed = time.monotonic()
    at_kill = Counter(row["stage"] for row in transfer_rows(ids).values())
    signed = answers_recorded([f"{i}:1" for i in ids])
    assert at_kill["broadcast"] < BATCH, f"the leader broadcast the whole batch: {at_kill}"
    index = platform.workers.index(leader)
    for held in (platform.workers, platform.worker_urls, platform.internal_urls):
        held.pop(index)  # the survivor answers the API and takes the leadership over

    paid = follow_all(platform, [f"/api/v1/payouts/{i}" for i in ids], timeout=120)
    print(
        f"\nleader killed at {dict(at_kill)} ({signed} answers recorded);"
        f" all paid {time.monotonic() - killed:.1f} s later"
    )
    assert_paid_once(platform, paid, payee, Decimal(0))
    assert_debited_once(platform, before, sum(AMOUNTS, Decimal(0)))


# --- 3. no key material anywhere -------------------------------------------------------------


def test_no_key_material_in_kafka_postgres_redis_or_the_logs_after_money_went_out(
    stack: tuple[Platform, SignerProcess], tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    platform, signer = stack
    # A refund and a payout of this test's own, so that it shows something run alone too.
    overpaid = settled_invoice(platform, "25", "30")
    platform.sim.mine(1)
    refund = api(
        platform,
        "POST",
        f"/api/v1/invoices/{overpaid['id']}/refunds",
        json={},
        headers={"Idempotency-Key": f"refund-{uuid.uuid4()}"},
    )
    assert refund.status_code == 201, refund.text
    (payout,) = request_payouts(platform, new_payee(), ["3"])
    confirmed = follow_all(
        platform, [f"/api/v1/refunds/{refund.json()['id']}", f"/api/v1/payouts/{payout['id']}"]
    )
    assert [body["amount"] for body in confirmed] == ["5", "3"]

    indexes = deposit_indexes(platform.merchant_id, [overpaid["id"]])
    needles = key_material(indexes)
    hot, xprv = dev_keys()
    planted_index = min(indexes)

    # The positive control: one secret planted in each kind of place, then one scan of all.
    control_key = f"{platform.namespace}:key-scan-control"
    control_topic = f"{platform.namespace}.key-scan-control"
    control_file = tmp_path / "control.log"
    client = redis.Redis.from_url(SETTINGS.redis_url)
    client.set(control_key, hot.hex(), ex=600)
    asyncio.run(plant_in_kafka(control_topic, xprv.encode()))
    control_file.write_text(f"recovery words: {DEV_MNEMONIC}\n")
    started = time.monotonic()
    try:
        with psycopg2.connect(DATABASE_URL) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("CREATE TEMP TABLE key_scan_control (note text)")
                cur.execute(
                    "INSERT INTO key_scan_control VALUES (%s)",
                    (needles[f"deposit key {planted_index} (base64)"][0].decode(),),
                )
                cur.execute("SELECT pg_my_temp_schema()::regnamespace::text")
                temp_schema = cur.fetchone()[0]
            in_postgres, tables, read = scan_postgres(conn, needles)
        in_redis, keys = scan_redis(needles)
    finally:
        client.delete(control_key)
    prefixes = (f"{platform.namespace}.", f"{platform.namespace}-")
    in_kafka, topics, messages = asyncio.run(scan_kafka(prefixes, needles))
    # Every process this test session started (workers, killed ones too, signers, simulators)
    # and every signer's signed log.
    logs = sorted(LOG_DIR.glob(f"*-{os.getpid()}-*.log"))
    signed_logs = sorted(tmp_path_factory.getbasetemp().rglob("signed.jsonl"))
    assert set(signer.output_logs) <= set(logs) and signer.signed_log in signed_logs
    assert {worker.log_path for worker in platform.workers} <= set(logs)
    in_files = scan_files([*logs, *signed_logs, control_file], needles)
    print(
        f"\nkey-material scan of {len(needles)} secrets (deposit indexes {sorted(indexes)}):"
        f" {tables} tables ({read / 1e6:.0f} MB), {keys} Redis keys, {messages} messages in"
        f" {topics} topics, {len(logs)} logs, {len(signed_logs)} signed logs;"
        f" {time.monotonic() - started:.1f} s"
    )

    planted = {
        (f"redis db0 {control_key}", "hot wallet key (hex)"),
        (f"kafka {control_topic}", "deposit account xprv"),
        (f"postgres {temp_schema}.key_scan_control", f"deposit key {planted_index} (base64)"),
        (f"file {control_file}", "mnemonic"),
    }
    assert in_postgres | in_redis | in_kafka | in_files == planted
