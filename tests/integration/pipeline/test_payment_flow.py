"""End to end on the real Kafka, PostgreSQL, Redis and Tron simulator, with two workers."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import aiopg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from app.settings import Settings
from tests.support.platform import Platform
from tests.support.processes import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]


def test_a_9_99_invoice_is_paid_and_settled_at_1_percent(platform: Platform) -> None:
    invoice = platform.create_invoice("9.99", order_id="order-1")
    assert invoice["status"] == "pending"
    assert invoice["required_confirmations"] == 1
    assert invoice["amount_due"] == "9.99"

    platform.pay_and_confirm(invoice, "9.99")

    paid = platform.wait_invoice(invoice["id"], lambda i: i["status"] == "paid", "paid")
    assert paid["amount_received"] == paid["amount_confirmed"] == "9.99"
    assert paid["amount_due"] == "0"
    assert paid["payment_exception"] is None
    settlement = platform.wait_settlement(invoice["id"])
    assert settlement["gross_amount"] == "9.99"
    assert settlement["platform_fee_amount"] == "0.1"
    assert settlement["net_amount"] == "9.89"
    assert settlement["platform_fee_percentage"] == "1"
    assert settlement["status"] == "completed"


def test_every_worker_answers_for_every_invoice(platform: Platform) -> None:
    invoice = platform.create_invoice("1.5", url=platform.worker_urls[1])
    for url in platform.worker_urls:
        assert platform.invoice(invoice["id"], url=url)["id"] == invoice["id"]


def test_another_merchant_gets_404_for_my_invoice(platform: Platform) -> None:
    invoice = platform.create_invoice("3")
    for url in platform.worker_urls:
        response = httpx.get(
            f"{url}/api/v1/invoices/{invoice['id']}",
            headers=platform.headers(platform.other_api_key),
            timeout=30,
        )
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "invoice_not_found"


def test_underpayment_then_a_second_payment_completes_it(platform: Platform) -> None:
    invoice = platform.create_invoice("20")
    platform.pay_and_confirm(invoice, "12.5")
    under = platform.wait_invoice(
        invoice["id"], lambda i: i["amount_confirmed"] == "12.5", "first payment confirmed"
    )
    assert under["status"] == "confirming"
    assert under["payment_exception"] == "underpaid"
    assert under["amount_due"] == "7.5"
    assert platform.settlement(invoice["id"]) is None

    platform.pay_and_confirm(invoice, "7.5")
    paid = platform.wait_invoice(invoice["id"], lambda i: i["status"] == "paid", "paid")
    assert paid["payment_exception"] is None
    assert len(paid["payments"]) == 2
    assert platform.wait_settlement(invoice["id"])["gross_amount"] == "20"


def test_overpayment_is_paid_flagged_and_settled_for_everything(platform: Platform) -> None:
    invoice = platform.create_invoice("10")
    platform.pay_and_confirm(invoice, "10.5")
    paid = platform.wait_invoice(invoice["id"], lambda i: i["status"] == "paid", "paid")
    assert paid["payment_exception"] == "overpaid"
    settlement = platform.wait_settlement(invoice["id"])
    assert settlement["gross_amount"] == "10.5"
    assert settlement["platform_fee_amount"] == "0.11"  # 0.105 rounds half-up to the cent
    assert settlement["net_amount"] == "10.39"


def test_cancellation(platform: Platform) -> None:
    invoice = platform.create_invoice("5")
    response = httpx.post(
        f"{platform.worker_urls[1]}/api/v1/invoices/{invoice['id']}/cancel",
        json={"reason": "customer changed their mind"},
        headers=platform.headers(),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancellation_reason"] == "customer changed their mind"

    again = httpx.post(
        f"{platform.url}/api/v1/invoices/{invoice['id']}/cancel",
        headers=platform.headers(),
        timeout=30,
    )
    assert again.status_code == 200  # the same cancellation, answered again
    paid = platform.create_invoice("5")
    platform.pay_and_confirm(paid, "5")
    platform.wait_invoice(paid["id"], lambda i: i["status"] == "paid", "paid")
    refused = httpx.post(
        f"{platform.url}/api/v1/invoices/{paid['id']}/cancel",
        headers=platform.headers(),
        timeout=30,
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "invalid_transition"
    assert "paid" in refused.json()["error"]["message"]


def test_a_payment_in_time_stays_in_time_while_the_platform_lags_past_the_deadline(
    platform: Platform,
) -> None:
    # The customer pays in time; the workers are frozen (a long GC, a stalled host) until well
    # after the deadline. When they wake, the expiry timer fires at once, but expiry waits for
    # the chain: the block read last is older than the deadline, so the invoice stays open until
    # the payment, in a block before the deadline, is applied. Without it the invoice expired
    # first and the payment was recorded late.
    invoice = platform.create_invoice("4", expires_in=10)
    for worker in platform.workers:
        worker.process.send_signal(signal.SIGSTOP)
    try:
        platform.pay_and_confirm(invoice, "4")
        deadline = datetime.fromisoformat(invoice["expires_at"].replace("Z", "+00:00"))
        time.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 3)
    finally:
        for worker in platform.workers:
            worker.process.send_signal(signal.SIGCONT)
    paid = platform.wait_invoice(invoice["id"], lambda i: i["status"] == "paid", "paid")
    assert paid["payment_exception"] is None and paid["expired_at"] is None
    assert paid["payments"][0]["late"] is False
    platform.sim.mine(1)  # the chain moves past the deadline: nothing is left to expire
    assert platform.wait_settlement(invoice["id"])["gross_amount"] == "4"
    assert platform.invoice(invoice["id"])["status"] == "paid"


def test_expiry_and_a_late_payment(platform: Platform) -> None:
    invoice = platform.create_invoice("4", expires_in=10)
    expired = platform.wait_expired(invoice)
    assert expired["expired_at"] is not None

    platform.pay_and_confirm(invoice, "4")
    late = platform.wait_invoice(
        invoice["id"], lambda i: i["amount_received"] == "4", "late payment recorded"
    )
    assert late["status"] == "expired"
    assert late["payment_exception"] == "paid_late"
    assert late["payments"][0]["late"] is True
    assert platform.settlement(invoice["id"]) is None  # the merchant decides about late money


def test_150_needs_12_confirmations_and_10000_needs_19(platform: Platform) -> None:
    medium = platform.create_invoice("150.00")
    large = platform.create_invoice("10000.00")
    assert medium["required_confirmations"] == 12
    assert large["required_confirmations"] == 19
    platform.sim.pay(medium["deposit_address"], "150")
    platform.sim.pay(large["deposit_address"], "10000")
    platform.sim.mine(11)  # the transfers' block and 10 more: 11 confirmations
    platform.wait_invoice(medium["id"], lambda i: i["amount_received"] == "150", "detected")
    public = platform.public(medium["id"]).json()
    assert public["status"] == "confirming"

    platform.sim.mine(1)  # 12th
    platform.wait_invoice(medium["id"], lambda i: i["status"] == "paid", "150 paid at 12")
    assert platform.invoice(large["id"])["status"] == "confirming"

    platform.sim.mine(6)  # 18 confirmations: not yet
    platform.wait_invoice(medium["id"], lambda i: i["status"] == "paid", "still paid")
    assert platform.invoice(large["id"])["status"] == "confirming"
    platform.sim.mine(1)  # 19th
    platform.wait_invoice(large["id"], lambda i: i["status"] == "paid", "10,000 paid at 19")


async def test_a_customer_watches_pending_confirming_paid_over_websocket(
    platform: Platform,
) -> None:
    invoice = platform.create_invoice("9.99")
    seen: list[dict[str, object]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            f"{platform.worker_urls[1]}/api/v1/public/invoice/{invoice['id']}/ws"
        ) as ws,
    ):
        first = await ws.receive_json(timeout=30)
        seen.append(first)
        platform.sim.pay(invoice["deposit_address"], "9.99")
        platform.sim.mine(1)
        while seen[-1]["status"] != "paid":
            seen.append(await ws.receive_json(timeout=60))
    statuses = [view["status"] for view in seen]
    assert statuses[0] == "pending"
    assert statuses[-1] == "paid"
    assert "confirming" in statuses
    assert statuses.index("confirming") < statuses.index("paid")
    # The first view may come from the invoice's history (no live view in Redis yet): it has no
    # version, which counts as 0 (docs/payment-page.md).
    versions = [view.get("version", 0) for view in seen]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert not [key for view in seen for key in view if "fee" in key]


def test_the_public_json_has_no_fee_field(platform: Platform) -> None:
    invoice = platform.create_invoice("9.99")
    body = platform.public(invoice["id"]).json()
    assert body["total"] == body["usdt_amount"] == "9.99"
    assert body["deposit_address"] == invoice["deposit_address"]
    # Its random id and address may spell "fee" themselves.
    shown = json.dumps(body).replace(invoice["id"], "").replace(invoice["deposit_address"], "")
    assert "fee" not in shown
    assert invoice["fee_percentage"] == "1"  # merchants do see it


def test_a_reorg_before_the_required_confirmations_orphans_the_payment_and_the_invoice_waits(
    platform: Platform,
) -> None:
    invoice = platform.create_invoice("150")
    txid = platform.sim.pay(invoice["deposit_address"], "150")
    platform.sim.mine(3)
    platform.wait_invoice(invoice["id"], lambda i: i["amount_received"] == "150", "detected")

    # The last 3 blocks are replaced; the transfer goes back to the pending pool.
    platform.sim.post("/sim/reorg", {"depth": 3, "delay": {txid: 10}})
    waiting = platform.wait_invoice(
        invoice["id"], lambda i: i["amount_received"] == "0", "payment orphaned"
    )
    assert waiting["status"] == "confirming"
    assert waiting["payments"] == []

    platform.sim.mine(1)  # re-included in a new block: detected again
    platform.wait_invoice(invoice["id"], lambda i: i["amount_received"] == "150", "re-detected")
    platform.sim.mine(10)
    assert platform.invoice(invoice["id"])["status"] == "confirming"  # 11 of 12
    platform.sim.mine(1)
    paid = platform.wait_invoice(invoice["id"], lambda i: i["status"] == "paid", "paid")
    assert len(paid["payments"]) == 1
    assert platform.wait_settlement(invoice["id"])["gross_amount"] == "150"


def test_a_reorg_after_settlement_reverses_it_and_the_transfer_included_again_settles_once(
    platform: Platform,
) -> None:
    invoice = platform.create_invoice("9.99")  # one confirmation: settled in the block itself
    txid = platform.pay_and_confirm(invoice, "9.99")
    platform.wait_invoice(invoice["id"], lambda i: i["status"] == "paid", "paid")
    first = platform.wait_settlement(invoice["id"])
    assert (first["status"], first["net_amount"]) == ("completed", "9.89")

    # A reorg deeper than its one confirmation: the block is replaced without the transfer,
    # which goes back to the pool and is included again some blocks later.
    platform.sim.post("/sim/reorg", {"depth": 2, "delay": {txid: 4}})
    reopened = platform.wait_invoice(
        invoice["id"], lambda i: i["status"] == "confirming", "reopened by the reorg"
    )
    assert (reopened["amount_confirmed"], reopened["payments"]) == ("0", [])
    reversed_ = platform.wait_settlement_status(invoice["id"], "reversed")
    assert reversed_["id"] == first["id"]
    books = asyncio.run(invoice_books(invoice["id"]))
    assert books["merchant"] == 0 and books["platform_fees"] == 0 and books["customer_funds"] == 0
    assert books["reversals"] == 1 and books["rows"] == [("reversed", 9_990_000)]
    # The merchant's invoice list (invoice_summaries) no longer says when it was paid.
    eventually(
        lambda: asyncio.run(summary_of(invoice["id"])) == ("confirming", None),
        timeout=30,
        what="the summary reopened",
    )

    platform.sim.mine(5)  # included again, and confirmed
    platform.wait_invoice(invoice["id"], lambda i: i["status"] == "paid", "paid again")
    second = platform.wait_settlement_status(invoice["id"], "completed")
    # Paid again: the summary says when, round 2's time, not round 1's.
    paid_again = eventually(
        lambda: (asyncio.run(summary_of(invoice["id"])) or ("", None))[1],
        timeout=30,
        what="the summary paid again",
    )
    assert paid_again > datetime.fromisoformat(first["completed_at"])
    assert second["id"] != first["id"] and second["gross_amount"] == "9.99"
    books = asyncio.run(invoice_books(invoice["id"]))
    assert books["rows"] == [("completed", 9_990_000), ("reversed", 9_990_000)]
    assert (books["merchant"], books["platform_fees"]) == (9_890_000, 100_000)  # once
    assert books["customer_funds"] == -9_990_000 and books["reversals"] == 1
    # The event store is written by its own agent, from Kafka: it may follow the settlements
    # table by a moment.
    expected = [
        ("SettlementCreated", 1),
        ("SettlementCompleted", 1),
        ("SettlementReversed", 1),
        ("SettlementCreated", 2),
        ("SettlementCompleted", 2),
    ]

    def stored() -> list[tuple[str, int]] | None:
        events = asyncio.run(settlement_events(invoice["id"]))
        return events if len(events) >= len(expected) else None

    assert eventually(stored, timeout=30, what="round 2's settlement events stored") == expected


async def summary_of(invoice_id: str) -> tuple[str, datetime | None] | None:
    async with aiopg.connect(Settings.from_env().database_url) as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT status, paid_at FROM invoice_summaries WHERE invoice_id = %s", (invoice_id,)
        )
        row = await cur.fetchone()
    return None if row is None else (row[0], row[1])


async def invoice_books(invoice_id: str) -> dict[str, Any]:
    """The invoice's settlements and everything the ledger booked for them, by account."""
    async with aiopg.connect(Settings.from_env().database_url) as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT status, gross_amount FROM settlements WHERE invoice_id = %s ORDER BY status",
            (invoice_id,),
        )
        rows = [(status, int(gross)) for status, gross in await cur.fetchall()]
        await cur.execute(
            "SELECT e.account, sum(e.amount), count(DISTINCT t.tx_id) FILTER"
            " (WHERE t.kind = 'settlement_reversal')"
            " FROM ledger_entries e JOIN ledger_transactions t USING (tx_id)"
            " WHERE t.reference IN (SELECT settlement_id FROM settlements WHERE invoice_id = %s)"
            "   AND t.kind IN ('settlement', 'settlement_reversal')"
            " GROUP BY e.account",
            (invoice_id,),
        )
        sums: dict[str, Any] = {"rows": rows, "reversals": 0}
        for account, amount, reversals in await cur.fetchall():
            name = "merchant" if account.startswith("merchant:") else account
            sums[name] = int(amount)
            sums["reversals"] = max(sums["reversals"], int(reversals))
    return sums


async def settlement_events(invoice_id: str) -> list[tuple[str, int]]:
    """The event store's settlement events of the invoice, with their round, in order."""
    async with aiopg.connect(Settings.from_env().database_url) as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT e.event_type, s.round FROM event_store e JOIN ("
            "  SELECT aggregate_id, (payload -> 'data' ->> 'settlement_round')::int AS round"
            "  FROM event_store WHERE event_type = 'SettlementCreated'"
            "    AND payload -> 'data' ->> 'invoice_id' = %s) s USING (aggregate_id)"
            " ORDER BY s.round, e.aggregate_version",
            (invoice_id,),
        )
        return [(event_type, int(round_)) for event_type, round_ in await cur.fetchall()]


def test_the_same_transfer_delivered_twice_is_applied_once(platform: Platform) -> None:
    invoice = platform.create_invoice("7")
    txid = platform.pay_and_confirm(invoice, "7")
    platform.wait_invoice(invoice["id"], lambda i: i["status"] == "paid", "paid")
    settlement = platform.wait_settlement(invoice["id"])

    redelivered = asyncio.run(redeliver_transfer(platform, txid))
    assert redelivered >= 1

    # Let the duplicate go through the whole chain of agents, then look.
    marker = platform.create_invoice("1")
    platform.pay_and_confirm(marker, "1")
    platform.wait_invoice(marker["id"], lambda i: i["status"] == "paid", "marker paid")
    after = platform.invoice(invoice["id"])
    assert after["amount_received"] == "7"
    assert len(after["payments"]) == 1
    assert platform.wait_settlement(invoice["id"]) == settlement
    assert asyncio.run(settlement_rows(invoice["id"])) == 1


async def redeliver_transfer(platform: Platform, txid: str) -> int:
    """Produce the watcher's message about ``txid`` again, byte for byte."""
    topic = f"{platform.namespace}.checkout.deposits"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers="127.0.0.1:9092",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9092", acks="all")
    await consumer.start()
    await producer.start()
    sent = 0
    try:
        batches = await consumer.getmany(timeout_ms=5000, max_records=100_000)
        for records in batches.values():
            for record in records:
                if txid.encode() in record.value:
                    await producer.send_and_wait(topic, key=record.key, value=record.value)
                    sent += 1
    finally:
        await consumer.stop()
        await producer.stop()
    return sent


async def settlement_rows(invoice_id: str) -> int:
    async with aiopg.connect(Settings.from_env().database_url) as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT count(*) FROM settlements s JOIN ledger_entries l USING (settlement_id)"
            " WHERE s.invoice_id = %s",
            (invoice_id,),
        )
        (entries,) = await cur.fetchone()
        await cur.execute("SELECT count(*) FROM settlements WHERE invoice_id = %s", (invoice_id,))
        (rows,) = await cur.fetchone()
    assert entries == 3 * rows  # double entry: customer funds, merchant, platform fee
    return int(rows)


def test_a_message_no_agent_can_read_goes_to_the_dead_letter_topic_and_work_goes_on(
    platform: Platform,
) -> None:
    garbage = b'{"type": "RefundEverything", "command": {"invoice_id": "inv_x"}}'
    record = asyncio.run(dead_letter_of(platform, "checkout.invoice-commands", garbage))
    assert record["agent"] == "invoice_agent"
    assert record["error_type"] == "MalformedMessage"
    assert "RefundEverything" in record["error"]
    assert record["value"] == {"text": garbage.decode()}
    metrics = "".join(
        httpx.get(f"{url}/metrics", timeout=10).text for url in platform.internal_urls
    )
    assert 'checkout_dead_letters_total{agent="invoice_agent"' in metrics

    invoice = platform.create_invoice("2")  # the agent kept running
    platform.pay_and_confirm(invoice, "2")
    platform.wait_invoice(invoice["id"], lambda i: i["status"] == "paid", "paid after a bad one")


async def dead_letter_of(platform: Platform, topic: str, value: bytes) -> dict[str, object]:
    source = f"{platform.namespace}.{topic}"
    dlq = f"{source}.dlq"
    key = f"poison-{uuid.uuid4().hex}".encode()
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9092", acks="all")
    consumer = AIOKafkaConsumer(
        dlq,
        bootstrap_servers="127.0.0.1:9092",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await producer.start()
    await consumer.start()
    try:
        await producer.send_and_wait(source, key=key, value=value)
        async with asyncio.timeout(60):
            async for message in consumer:
                if message.key == key:
                    return dict(json.loads(message.value))
    finally:
        await producer.stop()
        await consumer.stop()
    raise AssertionError("unreachable")
