"""GET /api/v1/invoices and the event store, end to end: events → projection → PostgreSQL → list.

One merchant gets five invoices (one paid, one cancelled, one underpaid, two pending), another
merchant one. The lists come from the read model the projection agent keeps, so every check
first waits for it to catch up.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiopg
import httpx
import jsonschema
import psycopg2
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.adapters.postgres import projections
from app.contract.schemas import ANALYTICS_DIRECTORY
from app.domain.events import parse_event
from app.runtime.topics import ANALYTICS, DOMAIN_EVENTS
from app.settings import Settings
from tests.support.platform import Platform, create_merchant, platform_env
from tests.support.processes import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

DATABASE_URL = Settings.from_env().database_url


@pytest.fixture(scope="module", autouse=True)
def read_model_schema(infrastructure: None) -> None:
    """Migration 0007 is applied (scripts/infra.sh up runs the migrations)."""
    with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('event_store'), to_regclass('invoice_summaries')")
        if None in cur.fetchone():
            pytest.fail(
                "the event store and read model tables are missing: run `scripts/infra.sh up "
                "postgres` (it applies migrations/)",
                pytrace=False,
            )


@dataclass
class Scenario:
    platform: Platform
    invoices: dict[str, dict[str, Any]]  # by role: paid, cancelled, underpaid, pending_1, …
    other_merchant_invoice: dict[str, Any]

    @property
    def newest_first(self) -> list[str]:
        ordered = sorted(
            self.invoices.values(),
            key=lambda i: (datetime.fromisoformat(i["created_at"]), i["id"]),
        )
        return [invoice["id"] for invoice in reversed(ordered)]


def list_invoices(
    platform: Platform, api_key: str | None = None, url: str | None = None, **params: Any
) -> httpx.Response:
    return httpx.get(
        f"{url or platform.url}/api/v1/invoices",
        params=params,
        headers=platform.headers(api_key),
        timeout=30,
    )


def create_for(platform: Platform, api_key: str, amount: str, **fields: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{platform.url}/api/v1/invoices",
        json={"amount": amount, **fields},
        headers=platform.headers(api_key),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def all_pages(platform: Platform, api_key: str | None = None, **params: Any) -> list[dict]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        page = list_invoices(platform, api_key, **params, **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.text
        body = page.json()
        items.extend(body["data"])
        assert body["has_more"] is (body["next_cursor"] is not None)
        if not body["has_more"]:
            return items
        cursor = body["next_cursor"]
    raise AssertionError("the cursor never reached the last page")


@pytest.fixture(scope="module")
def scenario(platform: Platform) -> Iterator[Scenario]:
    create = platform.create_invoice
    invoices: dict[str, dict[str, Any]] = {}
    for role, amount in [
        ("paid", "9.99"),
        ("pending_1", "1.25"),
        ("cancelled", "5"),
        ("underpaid", "3"),
        ("pending_2", "42"),
    ]:
        invoices[role] = create(amount, order_id=f"order-{role}-{uuid.uuid4().hex[:8]}")
    other = create_for(platform, platform.other_api_key, "7", order_id=invoices["paid"]["order_id"])

    platform.sim.pay(invoices["paid"]["deposit_address"], "9.99")
    platform.sim.pay(invoices["underpaid"]["deposit_address"], "1")
    platform.sim.mine(1)
    cancelled = httpx.post(
        f"{platform.url}/api/v1/invoices/{invoices['cancelled']['id']}/cancel",
        headers=platform.headers(),
        timeout=30,
    )
    assert cancelled.status_code == 200, cancelled.text
    invoices["paid"] = platform.wait_invoice(
        invoices["paid"]["id"], lambda i: i["status"] == "paid", "paid"
    )
    invoices["underpaid"] = platform.wait_invoice(
        invoices["underpaid"]["id"], lambda i: i["amount_confirmed"] == "1", "1 of 3 confirmed"
    )
    invoices["cancelled"] = platform.invoice(invoices["cancelled"]["id"])
    platform.wait_settlement(invoices["paid"]["id"])
    yield Scenario(platform, invoices, other)


def wait_for_projection(scenario: Scenario) -> list[dict[str, Any]]:
    """The merchant's list once it shows every invoice at its current version."""
    expected = {invoice["id"]: invoice["version"] for invoice in scenario.invoices.values()}

    def probe() -> list[dict[str, Any]] | None:
        items = all_pages(scenario.platform, limit=100)
        return items if {i["id"]: i["version"] for i in items} == expected else None

    return eventually(probe, timeout=60, what="the read model to catch up", every=0.2)


def test_every_invoice_is_listed_newest_first_as_it_stands(scenario: Scenario) -> None:
    items = wait_for_projection(scenario)
    assert [item["id"] for item in items] == scenario.newest_first
    by_id = {item["id"]: item for item in items}
    for invoice in scenario.invoices.values():
        listed = by_id[invoice["id"]]
        shown = {key: value for key, value in invoice.items() if key != "payments"}
        assert {key: listed[key] for key in shown} == shown  # the invoice's own shape and values
    paid = by_id[scenario.invoices["paid"]["id"]]
    assert (paid["status"], paid["amount_confirmed"], paid["amount_due"]) == ("paid", "9.99", "0")
    assert paid["paid_at"] is not None
    assert paid["fee_percentage"] == "1"
    underpaid = by_id[scenario.invoices["underpaid"]["id"]]
    assert underpaid["payment_exception"] == "underpaid"
    assert underpaid["amount_due"] == "2"
    assert by_id[scenario.invoices["cancelled"]["id"]]["cancelled_at"] is not None


def test_walking_the_cursor_two_at_a_time_sees_every_invoice_once(scenario: Scenario) -> None:
    wait_for_projection(scenario)
    pages = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = list_invoices(scenario.platform, **params).json()
        pages.append([item["id"] for item in body["data"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert body["has_more"] is True
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [invoice_id for page in pages for invoice_id in page] == scenario.newest_first


def test_an_invoice_created_while_paging_does_not_shift_the_next_page(
    platform: Platform, tmp_path: Path
) -> None:
    env = platform_env(platform.namespace, platform.sim, tmp_path)
    api_key = create_merchant("Paging Shop", env)["api_key"]
    a, b, c = (create_for(platform, api_key, "1")["id"] for _ in range(3))

    def listed(count: int) -> list[dict[str, Any]] | None:
        items = all_pages(platform, api_key)
        return items if len(items) == count else None

    eventually(lambda: listed(3), timeout=60, what="three invoices listed")
    first = list_invoices(platform, api_key, limit=2).json()
    assert [item["id"] for item in first["data"]] == [c, b]
    d = create_for(platform, api_key, "1")["id"]
    eventually(lambda: listed(4), timeout=60, what="the fourth invoice listed")
    # Another worker answers: the cursor carries the position, not the worker's memory.
    second = list_invoices(
        platform, api_key, url=platform.worker_urls[1], limit=2, cursor=first["next_cursor"]
    ).json()
    assert [item["id"] for item in second["data"]] == [a]
    assert second["has_more"] is False
    newest = list_invoices(platform, api_key, limit=2).json()
    assert [item["id"] for item in newest["data"]] == [d, c]


def test_filters(scenario: Scenario) -> None:
    wait_for_projection(scenario)
    platform, invoices = scenario.platform, scenario.invoices

    def ids(**params: Any) -> set[str]:
        return {item["id"] for item in all_pages(platform, **params)}

    assert ids(status="paid") == {invoices["paid"]["id"]}
    assert ids(status="pending") == {invoices["pending_1"]["id"], invoices["pending_2"]["id"]}
    assert ids(status="cancelled,confirming") == {
        invoices["cancelled"]["id"],
        invoices["underpaid"]["id"],
    }
    assert ids(status="expired") == set()
    assert ids(payment_exception="underpaid") == {invoices["underpaid"]["id"]}
    # The other merchant used the same order id: still only ours.
    assert ids(order_id=invoices["paid"]["order_id"]) == {invoices["paid"]["id"]}
    assert ids(order_id="no-such-order") == set()
    newest = scenario.newest_first
    created = {invoice["id"]: invoice["created_at"] for invoice in invoices.values()}
    # created_from inclusive, created_to exclusive
    window = ids(created_from=created[newest[3]], created_to=created[newest[1]])
    assert window == {newest[3], newest[2]}
    assert ids(status="pending", limit=1, created_from=created[newest[-1]]) == {
        invoices["pending_1"]["id"],
        invoices["pending_2"]["id"],
    }


def test_another_merchants_invoices_are_never_listed(scenario: Scenario) -> None:
    wait_for_projection(scenario)
    platform = scenario.platform
    ours = {item["id"] for item in all_pages(platform)}
    theirs_id = scenario.other_merchant_invoice["id"]
    assert theirs_id not in ours

    def theirs() -> list[dict[str, Any]] | None:
        items = all_pages(platform, platform.other_api_key)
        return items or None

    listed = eventually(theirs, timeout=60, what="the other merchant's invoice listed")
    assert [item["id"] for item in listed] == [theirs_id]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"status": "refunded"}, "status"),
        ({"payment_exception": "lost"}, "payment_exception"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"created_from": "yesterday"}, "created_from"),
        ({"created_to": "2024-05-01"}, "created_to"),
        ({"stauts": "paid"}, "stauts"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(
    platform: Platform, params: dict[str, str], param: str
) -> None:
    response = list_invoices(platform, **params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_the_list_needs_an_api_key(platform: Platform) -> None:
    response = httpx.get(f"{platform.url}/api/v1/invoices", timeout=30)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_required"


# --- the event store ----------------------------------------------------------------------------


def belongs_to(event: dict[str, Any], invoice_ids: set[str]) -> bool:
    """An invoice's own events, and its payments' and settlement's (they name the invoice)."""
    return event["aggregate_id"] in invoice_ids or event["data"].get("invoice_id") in invoice_ids


async def published_events(platform: Platform, invoice_ids: set[str]) -> dict[str, Any]:
    """Every event on the domain-events topic (up to its end now) of these invoices, by id."""
    topic = f"{platform.namespace}.{DOMAIN_EVENTS.name}"
    consumer = AIOKafkaConsumer(
        bootstrap_servers="127.0.0.1:9092", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(DOMAIN_EVENTS.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: dict[str, Any] = {}
        async with asyncio.timeout(60):
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    for record in records:
                        event = json.loads(record.value)
                        if belongs_to(event, invoice_ids):
                            found[event["event_id"]] = event
        return found
    finally:
        await consumer.stop()


def stored_events(invoice_ids: set[str]) -> list[tuple[str, dict[str, Any]]]:
    with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT event_id::text, payload FROM event_store WHERE aggregate_id = ANY(%s)"
            " OR payload -> 'data' ->> 'invoice_id' = ANY(%s)",
            (list(invoice_ids), list(invoice_ids)),
        )
        return list(cur.fetchall())


def test_the_event_store_holds_every_event_of_the_invoices_exactly_once(
    scenario: Scenario,
) -> None:
    wait_for_projection(scenario)
    invoice_ids = {invoice["id"] for invoice in scenario.invoices.values()}
    paid_id = scenario.invoices["paid"]["id"]

    def settled() -> list[tuple[str, dict[str, Any]]] | None:
        rows = stored_events(invoice_ids)
        types = {p["event_type"] for _, p in rows if belongs_to(p, {paid_id})}
        return rows if "SettlementCompleted" in types else None

    eventually(settled, timeout=60, what="the settlement's events in the event store")
    published = asyncio.run(published_events(scenario.platform, invoice_ids))
    rows = stored_events(invoice_ids)
    stored_ids = [event_id for event_id, _ in rows]
    assert len(stored_ids) == len(set(stored_ids))
    assert set(stored_ids) == set(published)
    for event_id, payload in rows:
        assert payload == published[event_id]  # the event exactly as published
    # Each invoice's history is complete: versions 1…N with N its current version.
    for invoice in scenario.invoices.values():
        versions = sorted(
            p["aggregate_version"] for _, p in rows if p["aggregate_id"] == invoice["id"]
        )
        assert versions == list(range(1, invoice["version"] + 1))
    paid_types = {p["event_type"] for _, p in rows if belongs_to(p, {paid_id})}
    assert {
        "InvoiceCreated",
        "PaymentDetected",
        "InvoicePaymentConfirmed",
        "InvoicePaid",
        "SettlementCreated",
        "SettlementCompleted",
    } <= paid_types


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE event_store SET event_type = 'InvoiceRefunded' WHERE event_id = %s",
        "DELETE FROM event_store WHERE event_id = %s",
    ],
)
def test_the_event_store_refuses_to_change_or_forget_an_event(
    scenario: Scenario, statement: str
) -> None:
    wait_for_projection(scenario)
    event_id, before = stored_events({scenario.invoices["pending_1"]["id"]})[0]
    with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        with pytest.raises(psycopg2.errors.RestrictViolation, match="append-only"):
            cur.execute(statement, (event_id,))
        conn.rollback()
    assert (event_id, before) in stored_events({scenario.invoices["pending_1"]["id"]})


async def summary_and_copies(invoice_id: str, event_id: str) -> tuple[Any, int]:
    async with aiopg.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        await cur.execute("SELECT * FROM invoice_summaries WHERE invoice_id = %s", (invoice_id,))
        summary = await cur.fetchone()
        await cur.execute("SELECT count(*) FROM event_store WHERE event_id = %s", (event_id,))
        (copies,) = await cur.fetchone()
    return summary, int(copies)


async def redeliver(payloads: list[dict[str, Any]]) -> None:
    async with aiopg.create_pool(DATABASE_URL, minsize=1, maxsize=1) as pool:
        for payload in payloads:
            await projections.apply(pool, parse_event(payload), 0, 0)


def test_redelivered_and_late_events_change_nothing(scenario: Scenario) -> None:
    wait_for_projection(scenario)
    paid_id = scenario.invoices["paid"]["id"]
    history = sorted(
        (p for _, p in stored_events({paid_id}) if p["aggregate_id"] == paid_id),
        key=lambda p: p["aggregate_version"],
    )
    newest, created = history[-1], history[0]
    assert (newest["event_type"], created["event_type"]) == ("InvoicePaid", "InvoiceCreated")
    before, copies = asyncio.run(summary_and_copies(paid_id, newest["event_id"]))
    assert copies == 1

    # The newest event twice, then the whole history again, oldest last (as after a rewind).
    asyncio.run(redeliver([newest, newest, *history[1:], created]))

    after, copies = asyncio.run(summary_and_copies(paid_id, newest["event_id"]))
    assert copies == 1
    assert after == before
    listed = {i["id"]: i for i in all_pages(scenario.platform, status="paid")}
    assert listed[paid_id]["status"] == "paid"


async def apply_batch(payloads: list[dict[str, Any]]) -> None:
    async with aiopg.create_pool(DATABASE_URL, minsize=1, maxsize=1) as pool:
        await projections.apply_batch(
            pool, [(parse_event(p), 0, i) for i, p in enumerate(payloads)]
        )


def test_a_batch_is_projected_whole_or_not_at_all(scenario: Scenario) -> None:
    # The projection agent applies what it reads in batches, one transaction each; an event
    # PostgreSQL refuses (a second event claiming a taken aggregate version) refuses its batch,
    # and the agent then applies the events one by one (tests/component/agents/).
    wait_for_projection(scenario)
    paid_id = scenario.invoices["paid"]["id"]
    history = sorted(
        (p for _, p in stored_events({paid_id}) if p["aggregate_id"] == paid_id),
        key=lambda p: p["aggregate_version"],
    )
    before, _ = asyncio.run(summary_and_copies(paid_id, history[-1]["event_id"]))
    asyncio.run(apply_batch([*reversed(history), *history]))  # redelivered, newest first
    after, copies = asyncio.run(summary_and_copies(paid_id, history[-1]["event_id"]))
    assert (after, copies) == (before, 1)

    fresh_id = f"inv_batch_{uuid.uuid4().hex[:12]}"
    # A new invoice of another merchant: the scenario's lists stay as the other tests expect.
    fresh = {**history[0], "event_id": str(uuid.uuid4()), "aggregate_id": fresh_id,
             "merchant_id": f"mer_batch_{uuid.uuid4().hex[:12]}"}  # fmt: skip
    forged = {**history[0], "event_id": str(uuid.uuid4())}  # version 1 of paid_id is taken
    with pytest.raises(psycopg2.errors.UniqueViolation):
        asyncio.run(apply_batch([fresh, forged]))
    summary, copies = asyncio.run(summary_and_copies(fresh_id, fresh["event_id"]))
    assert (summary, copies) == (None, 0)  # rolled back with the batch

    asyncio.run(apply_batch([fresh]))
    summary, copies = asyncio.run(summary_and_copies(fresh_id, fresh["event_id"]))
    assert copies == 1 and summary is not None


# --- crypto-checkout.analytics -------------------------------------------------------------------


async def analytics_messages(platform: Platform, wanted: Any) -> list[dict[str, Any]]:
    """The analytics topic from its start, read until ``wanted(messages)`` is true (30 s)."""
    topic = f"{platform.namespace}.{ANALYTICS.name}"
    consumer = AIOKafkaConsumer(
        bootstrap_servers="127.0.0.1:9092", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(ANALYTICS.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        messages: list[dict[str, Any]] = []
        async with asyncio.timeout(30):
            while not wanted(messages):
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    messages += [{"key": r.key.decode(), **json.loads(r.value)} for r in records]
        return messages
    finally:
        await consumer.stop()


def test_the_days_figures_are_published_on_the_analytics_topic(scenario: Scenario) -> None:
    # ANALYTICS_INTERVAL is 2 s on the test platform: the leader publishes a snapshot of the
    # day for every merchant with activity, and the platform's, keyed by merchant id.
    wait_for_projection(scenario)
    merchant_id = scenario.platform.merchant_id

    def settled(messages: list[dict[str, Any]]) -> bool:
        return any(m["key"] == merchant_id and m["settlements"] >= 1 for m in messages) and any(
            m["key"] == "platform" and m["settlements"] >= 1 for m in messages
        )

    messages = asyncio.run(analytics_messages(scenario.platform, settled))
    schemas = {
        path.stem: json.loads(path.read_text()) for path in ANALYTICS_DIRECTORY.glob("*.json")
    }
    for message in messages:
        body = {k: v for k, v in message.items() if k != "key"}
        jsonschema.validate(body, schemas[body["message_type"]])  # the published contract
    ours = [m for m in messages if m["key"] == merchant_id and m["settlements"] >= 1][-1]
    assert ours["message_type"] == "MerchantDailyMetrics" and ours["merchant_id"] == merchant_id
    assert (ours["gross_volume"], ours["invoices_paid"]) == ("9.99", 1)
    assert ours["invoices_created"] >= 5
    assert ours["fees"] == "0.1" and ours["net_volume"] == "9.89"  # 1 % rounded half-up
    platform_day = [m for m in messages if m["key"] == "platform"][-1]
    assert platform_day["message_type"] == "PlatformDailyMetrics"
    assert platform_day["payments_detected"] >= 2 and platform_day["day"] == ours["day"]
