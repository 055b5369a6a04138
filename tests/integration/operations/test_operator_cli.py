"""The operator's CLI on the real stack (docs/operations.md, "The operator's CLI"): one worker,
Kafka, the Tron simulator and a PostgreSQL of the test's own (the tests plant differences in the
books and block a settlement with a constraint, which must not touch other tests' data).

Each command is run as the operator runs it, ``checkout <group> <command> --json``, and judged
by what it changed: a dead letter replayed is applied once; events replayed change nothing; a
rescan from an old height changes nothing and finds a payment the watcher skipped; the ledger
reconciles, then reports a planted difference; failed webhooks are retried once.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg2
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.adapters.postgres.migrations import migrate
from app.adapters.tron.settings import DEV_HOT_WALLET
from tests.support.platform import Platform, running_platform, watcher_cursor
from tests.support.postgres import throwaway_postgres
from tests.support.processes import REPO_ROOT, VENV_BIN, eventually
from tests.support.webhook_receiver import WebhookReceiver, webhook_receiver

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with throwaway_postgres() as database:
        migrate(database.url)
        overrides = {
            "DATABASE_URL": database.url,
            "WEBHOOK_ALLOW_LOOPBACK": "true",
            "WEBHOOK_RETRY_SCHEDULE": "0.2,0.2",
            "WEBHOOK_DISABLE_AFTER": "3600",
            "WEBHOOK_POLL_INTERVAL": "0.2",
        }
        with running_platform(tmp_path_factory.mktemp("ops"), workers=1, **overrides) as running:
            yield running


def run(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "checkout"), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**platform.env},
        timeout=120,
        check=False,
    )


def cli(platform: Platform, *args: str, status: int = 0) -> Any:
    """``checkout <args> --json``: its answer, after checking its exit status."""
    result = run(platform, *args, "--json")
    assert result.returncode == status, (
        f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return json.loads(result.stdout)


def refused(platform: Platform, *args: str) -> str:
    """A command that must refuse: exit status 2 and one line naming the problem."""
    result = run(platform, *args)
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.stderr.startswith("checkout "), result.stderr
    return result.stderr


def sql(platform: Platform, statement: str, *values: Any) -> list[tuple[Any, ...]]:
    with psycopg2.connect(platform.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute(statement, values)
        return list(cur.fetchall()) if cur.description else []


def caught_up(platform: Platform) -> None:
    """Wait until the workers have consumed everything (``consumers lag`` says 0)."""

    def probe() -> bool:
        answer = cli(platform, "consumers", "lag")
        return bool(answer["groups"]) and all(group["lag"] == 0 for group in answer["groups"])

    eventually(probe, timeout=60, what="the workers to consume everything", every=1)


def watched(platform: Platform) -> int:
    """Wait until the chain watcher has read up to the simulator's head; that head."""
    head = int(platform.sim.status()["head"]["number"])
    eventually(
        lambda: (cursor := watcher_cursor(platform.env)) is not None and cursor >= head,
        timeout=60,
        what=f"the chain watcher to reach block {head}",
        every=0.2,
    )
    return head


def paid_invoice(platform: Platform, amount: str = "5") -> dict[str, Any]:
    invoice = platform.create_invoice(amount)
    platform.pay_and_confirm(invoice, amount)
    return platform.wait_invoice(invoice["id"], lambda i: i["status"] == "paid", "paid")


# --- merchants ------------------------------------------------------------------------------------


def test_merchants_are_listed_changed_and_suspended(platform: Platform) -> None:
    listed = cli(platform, "merchants", "list")["data"]
    other = next(m for m in listed if m["name"] == "Other Shop")
    shown = cli(platform, "merchants", "show", platform.merchant_id)
    assert shown["merchant_id"] == platform.merchant_id and shown["balance_available"] == "0"

    updated = cli(
        platform, "merchants", "update", other["merchant_id"], "--fee-percentage", "2.5",
        "--confirmations", "4",
    )  # fmt: skip
    assert (updated["fee_percentage"], updated["confirmations_override"]) == ("2.5", 4)
    headers = {"Authorization": f"Bearer {platform.other_api_key}"}
    created = httpx.post(
        f"{platform.url}/api/v1/invoices", json={"amount": "10"}, headers=headers, timeout=30
    )
    assert created.status_code == 201, created.text
    assert created.json()["required_confirmations"] == 4

    assert cli(platform, "merchants", "suspend", other["merchant_id"])["suspended"] is True
    refused_call = httpx.get(f"{platform.url}/api/v1/invoices", headers=headers, timeout=30)
    assert refused_call.status_code == 403
    assert refused_call.json()["error"]["code"] == "merchant_suspended"
    assert cli(platform, "merchants", "unsuspend", other["merchant_id"])["suspended"] is False
    assert httpx.get(f"{platform.url}/api/v1/invoices", headers=headers, timeout=30).is_success

    audit = sql(
        platform,
        "SELECT action, result FROM audit_log WHERE actor_kind = 'operator'"
        " AND action LIKE 'cli merchants%%' ORDER BY entry_id",
    )
    assert audit == [
        ("cli merchants update", "ok"),
        ("cli merchants suspend", "ok"),
        ("cli merchants unsuspend", "ok"),
    ]
    assert "no merchant mer_nobody" in refused(platform, "merchants", "show", "mer_nobody")
    assert "--confirmations" in refused(
        platform, "merchants", "update", other["merchant_id"], "--confirmations", "many"
    )
    assert "fee_percentage" in refused(
        platform, "merchants", "update", other["merchant_id"], "--fee-percentage", "101"
    )


# --- webhooks retry -------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as running:
        yield running


def test_failed_webhooks_are_retried_once(platform: Platform, receiver: WebhookReceiver) -> None:
    receiver.status = 500
    created = httpx.post(
        f"{platform.url}/api/v1/webhook-endpoints",
        json={"url": receiver.url(), "event_types": ["InvoiceCreated"]},
        headers=platform.headers(),
        timeout=30,
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()["id"]
    invoices = [platform.create_invoice("3")["id"] for _ in range(3)]

    def failed() -> int:
        return int(
            sql(
                platform,
                "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = %s"
                " AND status = 'failed'",
                endpoint,
            )[0][0]
        )

    eventually(lambda: failed() == 3, timeout=60, what="3 deliveries to fail for good")
    dry = cli(platform, "webhooks", "retry", "--endpoint", endpoint, "--dry-run")
    assert len(dry["queued"]) == 3 and sql(
        platform, "SELECT count(*) FROM webhook_deliveries WHERE origin = 'redelivery'"
    ) == [(0,)]

    receiver.status = 200
    retried = cli(platform, "webhooks", "retry", "--endpoint", endpoint)
    assert len(retried["queued"]) == 3 and retried["skipped"] == []
    delivered = receiver.wait_for(
        lambda seen: (
            len([w for w in seen if w.json.get("data", {}).get("invoice", {})]) >= 0
            and sum(1 for w in seen if w.headers.get("Webhook-Id") or True) >= 9 + 3
        ),
        "the three retries (after 3 x 3 failed attempts)",
    )
    retried_events = [w.json["id"] for w in delivered[-3:]]
    originals = sql(
        platform,
        "SELECT event_id::text FROM webhook_deliveries WHERE endpoint_id = %s"
        " AND origin = 'event' ORDER BY seq",
        endpoint,
    )
    assert sorted(retried_events) == sorted(row[0] for row in originals)
    assert {w.json["aggregate_id"] for w in delivered[-3:]} == set(invoices)
    # Again: every failure has its retry already, nothing is queued twice.
    again = cli(platform, "webhooks", "retry", "--since", "2020-01-01")
    assert again["queued"] == [] and len(receiver.requests()) == 12
    assert "--endpoint or --since" in refused(platform, "webhooks", "retry")
    httpx.delete(
        f"{platform.url}/api/v1/webhook-endpoints/{endpoint}",
        headers=platform.headers(),
        timeout=30,
    )


# --- dead letters ---------------------------------------------------------------------------------


def test_a_dead_letter_is_replayed_and_applied_once(platform: Platform) -> None:
    invoice = platform.create_invoice("6")
    # The cause: PostgreSQL refuses this invoice's settlement (a constraint the operator will
    # drop), so the settlement agent dead-letters its InvoicePaid.
    sql(
        platform,
        "ALTER TABLE settlements ADD CONSTRAINT ops_test_blocked"
        f" CHECK (invoice_id <> '{invoice['id']}') NOT VALID",
    )
    platform.pay_and_confirm(invoice, "6")
    platform.wait_invoice(invoice["id"], lambda i: i["status"] == "paid", "paid")

    def letter() -> dict[str, Any] | None:
        letters = cli(platform, "dlq", "list", "--topic", "crypto-checkout.domain-events")
        return next(iter(letters["letters"]), None)

    listed = eventually(letter, timeout=60, what="the settlement's dead letter", every=1)
    assert (listed["agent"], listed["error_type"]) == ("settlement_agent", "CheckViolation")
    shown = cli(platform, "dlq", "show", listed["id"])
    assert shown["key"] == invoice["id"] and '"InvoicePaid"' in shown["value"]
    assert "ops_test_blocked" in shown["error"] and "Traceback" in shown["traceback"]
    assert platform.settlement(invoice["id"]) is None

    sql(platform, "ALTER TABLE settlements DROP CONSTRAINT ops_test_blocked")
    replayed = cli(platform, "dlq", "replay", "--id", listed["id"])
    assert [item["id"] for item in replayed["replayed"]] == [listed["id"]]
    settlement = platform.wait_settlement(invoice["id"])

    # A second replay is refused; forced, it is sent and changes nothing.
    twice = cli(platform, "dlq", "replay", "--id", listed["id"], status=1)
    assert twice["replayed"] == [] and "already" in twice["skipped"][0]["reason"]
    cli(platform, "dlq", "replay", "--id", listed["id"], "--force")
    caught_up(platform)
    assert sql(
        platform,
        "SELECT count(*) FROM ledger_transactions WHERE kind = 'settlement' AND reference = %s",
        settlement["id"],
    ) == [(1,)]
    assert sql(platform, "SELECT replays FROM dead_letter_replays") == [(2,)]

    purged = cli(platform, "dlq", "purge", "--topic", "crypto-checkout.domain-events", "--replayed")
    assert purged["deleted"] == 1
    assert cli(platform, "dlq", "list", "--topic", "crypto-checkout.domain-events")["total"] == 0
    assert "choose the letters" in refused(platform, "dlq", "replay")
    assert "webhooks retry" in refused(
        platform, "dlq", "replay", "--topic", "crypto-checkout.notifications", "--all"
    )
    assert "--yes" in refused(platform, "dlq", "purge", "--topic", "checkout.deposits", "--all")


# --- events replay --------------------------------------------------------------------------------


def test_events_replayed_from_the_store_change_nothing(platform: Platform) -> None:
    invoice = paid_invoice(platform)
    settlement = platform.wait_settlement(invoice["id"])
    caught_up(platform)
    stored = sql(
        platform,
        "SELECT event_id::text FROM event_store WHERE aggregate_id = %s ORDER BY seq",
        invoice["id"],
    )
    replayed = cli(platform, "events", "replay", "--aggregate", invoice["id"])
    assert replayed["events"] == len(stored) >= 3
    assert replayed["topic"] == f"{platform.namespace}.crypto-checkout.domain-events"
    caught_up(platform)
    assert stored == sql(
        platform,
        "SELECT event_id::text FROM event_store WHERE aggregate_id = %s ORDER BY seq",
        invoice["id"],
    )
    assert platform.settlement(invoice["id"]) == settlement

    # To an integrator's own topic: the same events, in order, with the replay header.
    topic = f"{platform.namespace}.integrator-rebuild"
    asyncio.run(_create_topic(platform, topic))
    cli(platform, "events", "replay", "--aggregate", invoice["id"], "--to-topic", topic)
    records = asyncio.run(_read(platform, topic, len(stored)))
    assert [json.loads(value)["event_id"] for _, value, _ in records] == [row[0] for row in stored]
    assert {key for key, _, _ in records} == {invoice["id"].encode()}
    assert all(("checkout-replay", b"event-store") in headers for _, _, headers in records)

    assert "--all" in refused(platform, "events", "replay")
    internal = f"{platform.namespace}.checkout.invoice-commands"
    assert "not a topic of domain events" in refused(
        platform, "events", "replay", "--all", "--to-topic", internal
    )
    assert "create it first" in refused(
        platform, "events", "replay", "--all", "--to-topic", f"{platform.namespace}.nowhere"
    )


async def _create_topic(platform: Platform, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:9092")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def _read(
    platform: Platform, topic: str, count: int
) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers="127.0.0.1:9092", auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        records = []
        while len(records) < count:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, f"only {len(records)} of {count} records on {topic}"
            for messages in batch.values():
                records += [(m.key, m.value, list(m.headers)) for m in messages]
        return records
    finally:
        await consumer.stop()


# --- chain ----------------------------------------------------------------------------------------


def test_chain_status_shows_the_watcher_and_the_last_reorg(platform: Platform) -> None:
    before = cli(platform, "chain", "status")
    assert before["node"]["head"] == platform.sim.status()["head"]["number"]
    assert before["watcher"]["name"] == platform.namespace
    assert 0 <= before["watcher"]["lag_blocks"] <= 2
    # A transfer in the replaced blocks, dropped by the reorg: the new branch differs from the
    # old one (empty blocks would be rebuilt identical, and no reorg would be seen).
    txid = platform.sim.pay(DEV_HOT_WALLET, "1")
    platform.sim.mine(2)
    watched(platform)
    platform.sim.post("/sim/reorg", {"depth": 2, "drop": [txid]})
    platform.sim.mine(1)

    def reorg_seen() -> dict[str, Any] | None:
        status = cli(platform, "chain", "status")
        return status if status["reorgs"] > before["reorgs"] else None

    after = eventually(reorg_seen, timeout=60, what="the reorg in chain status", every=1)
    assert after["last_reorg"]["depth"] >= 1
    assert after["last_reorg"]["fork_block"] < after["node"]["head"]


def test_a_rescan_changes_nothing_and_finds_a_skipped_payment(platform: Platform) -> None:
    seen = paid_invoice(platform, "7")
    platform.wait_settlement(seen["id"])
    paid_block = sql(
        platform,
        "SELECT (payload->'data'->>'block_number')::bigint FROM event_store"
        " WHERE payload->'data'->>'invoice_id' = %s AND event_type = 'PaymentDetected'",
        seen["id"],
    )[0][0]
    platform.sim.mine(25)  # solidified
    watched(platform)

    # A rescan from an old height: the payment is handed on again, and nothing changes.
    events = sql(platform, "SELECT count(*) FROM event_store")
    status = cli(platform, "chain", "status")
    rescan = cli(
        platform, "chain", "rescan", "--from", str(paid_block - 2), "--to", str(paid_block + 2)
    )
    assert rescan["blocks"] == 5
    payment_id = seen["payments"][0]["payment_id"]  # <tx hash>:<log index>
    assert [f"{p['tx_hash']}:{p['log_index']}" for p in rescan["published"]] == [payment_id]
    caught_up(platform)
    assert sql(platform, "SELECT count(*) FROM event_store") == events
    assert cli(platform, "chain", "status")["watcher"]["cursor"] >= status["watcher"]["cursor"]

    # The watcher is made to skip blocks (its cursor moved past them by hand, as a bad restore
    # or a mistaken operator would): a payment mined there is not seen until they are rescanned.
    missed = platform.create_invoice("8")
    head = watched(platform)
    log = platform.workers[0].log_path
    log_before = len(log.read_text(errors="replace"))
    sql(
        platform,
        "UPDATE chain_watcher_cursor SET block_number = %s WHERE watcher_name = %s",
        head + 5,
        platform.namespace,
    )
    platform.sim.mine(1)  # the watcher's save of this block meets the moved cursor, and reloads
    eventually(
        lambda: "another watcher is active" in log.read_text(errors="replace")[log_before:],
        timeout=30,
        what="the watcher to find its cursor moved",
    )
    time.sleep(1)  # its next poll, 0.2 s later, starts from the moved cursor
    platform.pay_and_confirm(missed, "8")  # into block head + 2, below the cursor
    platform.sim.mine(25)
    assert watched(platform) >= head + 27
    assert platform.invoice(missed["id"])["status"] == "pending"
    found = cli(platform, "chain", "rescan", "--from", str(head + 1), "--to", str(head + 5))
    assert [p["to_address"] for p in found["published"]] == [missed["deposit_address"]]
    platform.wait_invoice(missed["id"], lambda i: i["status"] == "paid", "paid after the rescan")

    assert "above block" in refused(platform, "chain", "rescan", "--from", "1", "--to", "99999999")
    assert "is above the last block" in refused(
        platform, "chain", "rescan", "--from", str(head + 4), "--to", str(head + 3)
    )


# --- consumers ------------------------------------------------------------------------------------


def test_consumer_lag_per_group_topic_and_partition(platform: Platform) -> None:
    platform.create_invoice("1")
    caught_up(platform)
    answer = cli(platform, "consumers", "lag")
    assert platform.namespace in {group["group"] for group in answer["groups"]}
    commands = f"{platform.namespace}.checkout.invoice-commands"
    rows = [
        row
        for row in answer["partitions"]
        if row["group"] == platform.namespace and row["topic"] == commands
    ]
    # Every partition of a topic the group reads, those it never committed on too.
    assert sorted(row["partition"] for row in rows) == list(range(12))
    assert all(row["lag"] == 0 and row["end"] >= (row["committed"] or 0) for row in rows)
    assert sum(row["end"] for row in rows) >= 1

    # An integrator's group that read nothing yet is behind by everything kept.
    topic = f"{platform.namespace}.crypto-checkout.domain-events"
    asyncio.run(_commit(f"{platform.namespace}-integrator", topic))
    integrator = cli(platform, "consumers", "lag", "--group", f"{platform.namespace}-integrator")
    ends = {row["partition"]: row["end"] for row in integrator["partitions"]}
    assert len(ends) == 12 and integrator["groups"][0]["lag"] == sum(ends.values()) > 0
    assert "no consumer group" in refused(platform, "consumers", "lag", "--group", "nobody-here")
    over = run(platform, "consumers", "lag", "--all", "--fail-over", "0")
    assert over.returncode == 1  # the integrator's group is behind


async def _commit(group: str, topic: str) -> None:
    """A consumer group that committed on partition 0 before reading anything."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers="127.0.0.1:9092", group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.commit({TopicPartition(topic, 0): 0})
    finally:
        await consumer.stop()


# --- the ledger (last: it plants a difference in the books) ---------------------------------------


def test_ledger_reconciles_then_reports_a_planted_difference(platform: Platform) -> None:
    invoice = paid_invoice(platform, "3")  # at least one settlement of this test's own
    settled = "SELECT status FROM settlements WHERE invoice_id = %s"
    eventually(
        lambda: sql(platform, settled, invoice["id"]) == [("completed",)],
        timeout=60,
        what="the invoice's settlement to complete",
    )
    caught_up(platform)
    clean = cli(platform, "ledger", "reconcile", "--settlements-only")
    assert clean["reconciled"] is True and clean["differences"] == 0
    assert clean["settlements"]["checked"] >= 1

    # A settlement recorded as completed that the ledger never booked, with a fee the fee rule
    # would not give (1 % of 10 USDT is 0.10, not 0.05).
    sql(
        platform,
        "INSERT INTO settlements (settlement_id, invoice_id, merchant_id, gross_amount,"
        " platform_fee_amount, platform_fee_percentage, net_amount, status, created_at,"
        " completed_at) VALUES ('stl_planted', 'inv_planted', %s, 10000000, 50000, 1.00,"
        " 9950000, 'completed', now(), now())",
        platform.merchant_id,
    )
    planted = cli(platform, "ledger", "reconcile", "--settlements-only", status=1)
    assert planted["reconciled"] is False and planted["differences"] == 2
    problems = {d["problem"] for d in planted["settlements"]["differences"]}
    assert "a completed settlement missing from the ledger" in problems
    assert any("the rule gives 100000" in problem for problem in problems)
    text = run(platform, "ledger", "reconcile", "--settlements-only")
    assert text.returncode == 1 and "stl_planted" in text.stdout
    assert text.stdout.splitlines()[-1].startswith("NOT reconciled")


# --- money out ------------------------------------------------------------------------------------


def test_giving_up_a_refund_that_is_not_held_is_refused_and_audited(platform: Platform) -> None:
    # The held case itself: tests/component/signer/test_money_out_driver.py.
    unknown = "rf_" + "0" * 24
    stderr = refused(platform, "money-out", "give-up-refund", unknown, "--reason", "dropped")
    assert f"no refund {unknown}" in stderr
    assert "not a refund id" in refused(
        platform, "money-out", "give-up-refund", "po_123", "--reason", "dropped"
    )
    assert "--reason must be one line" in refused(
        platform, "money-out", "give-up-refund", unknown, "--reason", "two\nlines"
    )
    audit = sql(
        platform,
        "SELECT action, result, details->>'error' FROM audit_log WHERE actor_kind = 'operator'"
        " AND action = 'cli money-out give-up-refund'",
    )
    assert audit == [("cli money-out give-up-refund", "refused", f"no refund {unknown}")]
