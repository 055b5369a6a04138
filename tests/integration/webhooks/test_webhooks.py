"""Merchant webhooks end to end: real workers, Kafka, PostgreSQL and an aiohttp receiver.

Every received webhook is checked with the verification function merchants copy from
docs/webhooks.md (examples/verify_webhook.py), so the promise in the docs is what is tested.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest
from aiokafka import AIOKafkaConsumer

from app.settings import Settings
from tests.support.platform import Platform
from tests.support.processes import eventually
from tests.support.webhook_receiver import ReceivedWebhook, WebhookReceiver, webhook_receiver

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "verify_webhook.py"
_spec = importlib.util.spec_from_file_location("verify_webhook_example", _EXAMPLE)
assert _spec is not None and _spec.loader is not None
_example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_example)
verify_webhook = _example.verify_webhook


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as running:
        yield running


def api(platform: Platform, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = platform.headers(kwargs.pop("api_key", None))
    return httpx.request(method, f"{platform.url}{path}", headers=headers, timeout=30, **kwargs)


def create_endpoint(platform: Platform, url: str, **fields: Any) -> dict[str, Any]:
    response = api(platform, "POST", "/api/v1/webhook-endpoints", json={"url": url, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


def about(invoice_id: str, webhooks: list[ReceivedWebhook]) -> list[dict[str, Any]]:
    """The bodies of webhooks about one invoice: its events, its payments' and its settlement's."""
    bodies = [webhook.json for webhook in webhooks]
    return [
        body
        for body in bodies
        if body["aggregate_id"] == invoice_id or body["data"].get("invoice_id") == invoice_id
    ]


def assert_in_order_without_gaps(bodies: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per aggregate, versions 1, 2, 3 … in arrival order; returns the types per aggregate."""
    versions: dict[str, list[int]] = defaultdict(list)
    types: dict[str, list[str]] = defaultdict(list)
    for body in bodies:
        versions[body["aggregate_id"]].append(body["aggregate_version"])
        types[body["aggregate_id"]].append(body["type"])
    for aggregate_id, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), (aggregate_id, types[aggregate_id], seen)
    return types


def delivery(platform: Platform, delivery_id: str) -> dict[str, Any]:
    response = api(platform, "GET", f"/api/v1/webhook-deliveries/{delivery_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def deliveries(platform: Platform, endpoint_id: str, **query: str) -> list[dict[str, Any]]:
    response = api(
        platform, "GET", f"/api/v1/webhook-endpoints/{endpoint_id}/deliveries", params=query
    )
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


# --- the happy path ---------------------------------------------------------------------------


def test_an_invoice_lifecycle_arrives_in_order_and_signed(
    platform: Platform, receiver: WebhookReceiver
) -> None:
    endpoint = create_endpoint(platform, receiver.url("/lifecycle"))
    secret = endpoint["secret"]
    assert secret.startswith("whsec_")
    assert endpoint["event_types"] == ["*"] and endpoint["enabled"] is True

    invoice = platform.create_invoice("9.99", order_id="webhook-order")
    platform.pay_and_confirm(invoice, "9.99")
    platform.wait_settlement(invoice["id"])

    def complete(seen: list[ReceivedWebhook]) -> bool:
        types = [body["type"] for body in about(invoice["id"], seen)]
        return "InvoicePaid" in types and "SettlementCompleted" in types

    received = receiver.wait_for(complete, "the invoice's webhooks up to SettlementCompleted")
    bodies = about(invoice["id"], received)
    types = assert_in_order_without_gaps(bodies)
    assert types[invoice["id"]][0] == "InvoiceCreated"
    assert types[invoice["id"]][-1] == "InvoicePaid"
    settlement_types = [t for aggregate in types.values() for t in aggregate if "Settlement" in t]
    assert settlement_types == ["SettlementCreated", "SettlementCompleted"]
    assert any(t == "PaymentDetected" for aggregate in types.values() for t in aggregate)

    for webhook in about_webhooks(invoice["id"], received):
        body = verify_webhook(webhook.body, webhook.headers["Checkout-Signature"], secret)
        assert body["attempt"] == 1
        assert webhook.headers["Checkout-Event-Id"] == body["id"]
        assert webhook.headers["Checkout-Delivery-Id"] == body["delivery_id"]
        assert webhook.headers["Content-Type"] == "application/json"
    paid = next(body for body in bodies if body["type"] == "InvoicePaid")
    assert paid["data"]["amount_confirmed"] == "9.99"
    assert paid["merchant_id"] == platform.merchant_id
    # Merchants see fees (customers never do).
    assert "fee_percentage" in paid["data"]

    # The delivery log has each of them, succeeded at the first attempt with the 200.
    log = deliveries(platform, endpoint["id"], limit="100")
    assert {entry["event_id"] for entry in log} >= {body["id"] for body in bodies}
    assert all(entry["status"] == "succeeded" for entry in log)
    detail = delivery(platform, log[0]["id"])
    assert detail["attempts"][0]["status_code"] == 200
    assert detail["attempts"][0]["latency_ms"] >= 0
    assert detail["event"]["event_id"] == detail["event_id"]

    # The invoice's own deliveries across endpoints, as the dashboard's invoice page shows them.
    answer = api(platform, "GET", f"/api/v1/invoices/{invoice['id']}/webhook-deliveries")
    assert answer.status_code == 200, answer.text
    of_invoice = answer.json()["data"]
    assert {entry["aggregate_id"] for entry in of_invoice} == {invoice["id"]}
    assert "InvoicePaid" in {entry["event_type"] for entry in of_invoice}
    seqs = [entry["id"] for entry in log if entry["aggregate_id"] == invoice["id"]]
    assert [entry["id"] for entry in of_invoice] == seqs  # newest first, like the endpoint log


def about_webhooks(invoice_id: str, webhooks: list[ReceivedWebhook]) -> list[ReceivedWebhook]:
    return [
        webhook
        for webhook in webhooks
        if webhook.json["aggregate_id"] == invoice_id
        or webhook.json["data"].get("invoice_id") == invoice_id
    ]


def test_event_type_filters_choose_what_an_endpoint_gets(
    platform: Platform, receiver: WebhookReceiver
) -> None:
    create_endpoint(platform, receiver.url("/paid-only"), event_types=["InvoicePaid"])
    create_endpoint(platform, receiver.url("/invoices"), event_types=["Invoice*"])
    invoice = platform.create_invoice("2.5")
    platform.pay_and_confirm(invoice, "2.5")
    receiver.wait_for(
        lambda seen: about(invoice["id"], seen), "InvoicePaid", path="/paid-only", timeout=60
    )
    receiver.wait_for(
        lambda seen: any(b["type"] == "InvoicePaid" for b in about(invoice["id"], seen)),
        "the invoice family up to InvoicePaid",
        path="/invoices",
    )
    time.sleep(1)  # anything unwanted would have arrived with the rest by now
    assert [b["type"] for b in about(invoice["id"], receiver.requests("/paid-only"))] == [
        "InvoicePaid"
    ]
    family = [b["type"] for b in about(invoice["id"], receiver.requests("/invoices"))]
    assert family[0] == "InvoiceCreated" and family[-1] == "InvoicePaid"
    assert all(t.startswith("Invoice") for t in family)


# --- failure and recovery ---------------------------------------------------------------------


def test_a_receiver_down_for_a_while_gets_everything_once_in_order(
    platform: Platform, receiver: WebhookReceiver
) -> None:
    endpoint = create_endpoint(platform, receiver.url("/flaky"), event_types=["Invoice*"])
    receiver.down()
    invoices = [platform.create_invoice(amount) for amount in ("1", "2", "3")]
    cancelled = api(platform, "POST", f"/api/v1/invoices/{invoices[1]['id']}/cancel", json={})
    assert cancelled.status_code == 200, cancelled.text

    # Wait until attempts have failed against the dead receiver, then bring it back.
    def retried() -> bool:
        log = deliveries(platform, endpoint["id"], status="pending")
        return any(entry["attempt_count"] >= 2 for entry in log)

    eventually(retried, timeout=30, what="a retried delivery while the receiver is down")
    assert receiver.requests("/flaky") == []
    receiver.up()

    def all_arrived(seen: list[ReceivedWebhook]) -> bool:
        return all(about(invoice["id"], seen) for invoice in invoices) and any(
            b["type"] == "InvoiceCancelled" for b in about(invoices[1]["id"], seen)
        )

    receiver.wait_for(all_arrived, "every queued webhook after the receiver is back", path="/flaky")
    time.sleep(1.5)  # a duplicate would arrive within the retry delays
    received = receiver.requests("/flaky")
    event_ids = [webhook.json["id"] for webhook in received]
    assert len(event_ids) == len(set(event_ids)), "a webhook arrived twice"
    for invoice in invoices:
        assert_in_order_without_gaps(about(invoice["id"], received))
    assert [b["type"] for b in about(invoices[1]["id"], received)] == [
        "InvoiceCreated",
        "InvoiceCancelled",
    ]
    # The log shows the failed attempts before the success.
    cancel_delivery = next(
        entry
        for entry in deliveries(platform, endpoint["id"], limit="100")
        if entry["event_type"] == "InvoiceCreated" and entry["aggregate_id"] == invoices[0]["id"]
    )
    attempts = delivery(platform, cancel_delivery["id"])["attempts"]
    assert attempts[-1]["status_code"] == 200
    assert all(attempt["error"] for attempt in attempts[:-1]) and len(attempts) >= 2
    assert "cannot connect" in attempts[0]["error"] or "Disconnected" in attempts[0]["error"]


def test_a_receiver_failing_forever_is_dead_lettered_disabled_and_redelivered_once_fixed(
    platform: Platform, receiver: WebhookReceiver
) -> None:
    started = datetime.now(UTC)
    failing = create_endpoint(platform, receiver.url("/broken"), event_types=["InvoiceCreated"])
    watcher = create_endpoint(
        platform, receiver.url("/ops"), event_types=["WebhookEndpointDisabled"]
    )
    receiver.status = 500
    invoice = platform.create_invoice("4")

    def dead() -> dict[str, Any] | None:
        log = deliveries(platform, failing["id"], status="failed")
        return next((entry for entry in log if entry["aggregate_id"] == invoice["id"]), None)

    failed = eventually(dead, timeout=60, what="the delivery failed for good")
    assert failed["attempt_count"] == 9  # the first attempt and 8 retries
    assert "HTTP 500" in failed["last_error"]
    attempts = delivery(platform, failed["id"])["attempts"]
    assert [attempt["status_code"] for attempt in attempts] == [500] * 9
    # Retries back off: the gaps grow (0.3 s … 8 s, ±20 % jitter).
    starts = [datetime.fromisoformat(attempt["started_at"]) for attempt in attempts]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(starts)]
    assert gaps[-1] > gaps[0]

    def disabled() -> dict[str, Any] | None:
        body = api(platform, "GET", f"/api/v1/webhook-endpoints/{failing['id']}").json()
        return None if body["enabled"] else dict(body)

    endpoint = eventually(disabled, timeout=30, what="the failing endpoint disabled")
    assert endpoint["disabled_reason"] == "failing"

    # The merchant hears of it on their other endpoint, signed with that endpoint's secret.
    receiver.status = 200
    notices = receiver.wait_for(
        lambda seen: any(w.json["aggregate_id"] == failing["id"] for w in seen),
        "WebhookEndpointDisabled on the other endpoint",
        path="/ops",
    )
    notice = next(w for w in notices if w.json["aggregate_id"] == failing["id"])
    body = verify_webhook(notice.body, notice.headers["Checkout-Signature"], watcher["secret"])
    assert body["type"] == "WebhookEndpointDisabled"
    assert body["data"]["url"] == failing["url"]

    # The dead letter is on crypto-checkout.notifications.dlq with the delivery and its error.
    record = asyncio.run(find_dead_letter(platform, failed["id"]))
    assert record["agent"] == "webhook_dispatcher"
    assert "HTTP 500" in record["error"]
    assert json.loads(record["value"]["text"])["event"]["aggregate_id"] == invoice["id"]

    # Redelivery of a disabled endpoint is refused until the merchant enables it again.
    refused = api(platform, "POST", f"/api/v1/webhook-deliveries/{failed['id']}/redeliver")
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "webhook_endpoint_disabled"
    enabled = api(
        platform, "PATCH", f"/api/v1/webhook-endpoints/{failing['id']}", json={"enabled": True}
    )
    assert enabled.status_code == 200 and enabled.json()["failing_since"] is None
    redelivered = api(platform, "POST", f"/api/v1/webhook-deliveries/{failed['id']}/redeliver")
    assert redelivered.status_code == 202, redelivered.text
    new_id = redelivered.json()["delivery_id"]

    def succeeded() -> dict[str, Any] | None:
        found = delivery(platform, new_id)
        return found if found["status"] == "succeeded" else None

    done = eventually(succeeded, timeout=30, what="the redelivery succeeded")
    assert done["redelivery_of"] == failed["id"] and done["origin"] == "redelivery"
    arrived = [
        w for w in receiver.requests("/broken") if w.headers["Checkout-Delivery-Id"] == new_id
    ]
    assert len(arrived) == 1
    body = verify_webhook(
        arrived[0].body, arrived[0].headers["Checkout-Signature"], failing["secret"]
    )
    assert body["id"] == failed["event_id"] and body["type"] == "InvoiceCreated"
    assert datetime.fromisoformat(body["created"]) >= started - timedelta(seconds=5)


async def find_dead_letter(platform: Platform, delivery_id: str) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(
        f"{platform.namespace}.crypto-checkout.notifications.dlq",
        bootstrap_servers="127.0.0.1:9092",
        group_id=f"test-dlq-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for messages in batches.values():
                for message in messages:
                    record = json.loads(message.value)
                    notification = json.loads(record["value"]["text"])
                    if notification["delivery_id"] == delivery_id:
                        return dict(record)
        raise AssertionError(f"no dead letter for {delivery_id}")
    finally:
        await consumer.stop()


# --- secrets ----------------------------------------------------------------------------------


def test_during_rotation_both_secrets_verify_then_only_the_new_one(
    platform: Platform, receiver: WebhookReceiver
) -> None:
    endpoint = create_endpoint(platform, receiver.url("/rotate"))
    old_secret = endpoint["secret"]
    rotated = api(
        platform,
        "POST",
        f"/api/v1/webhook-endpoints/{endpoint['id']}/rotate-secret",
        json={"grace_period_seconds": 3600},
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != old_secret
    assert rotated.json()["previous_secret_expires_at"] is not None
    # Nobody can read a secret back.
    shown = api(platform, "GET", f"/api/v1/webhook-endpoints/{endpoint['id']}").json()
    assert "secret" not in shown

    first = send_test_event(platform, receiver, endpoint["id"], "/rotate")
    header = first.headers["Checkout-Signature"]
    assert header.count("v1=") == 2
    assert verify_webhook(first.body, header, old_secret)["type"] == "WebhookTest"
    assert verify_webhook(first.body, header, new_secret)["type"] == "WebhookTest"

    # Rotating again with no grace: only the newest secret signs.
    newest = api(
        platform,
        "POST",
        f"/api/v1/webhook-endpoints/{endpoint['id']}/rotate-secret",
        json={"grace_period_seconds": 0},
    ).json()["secret"]
    second = send_test_event(platform, receiver, endpoint["id"], "/rotate")
    header = second.headers["Checkout-Signature"]
    assert header.count("v1=") == 1
    verify_webhook(second.body, header, newest)
    for stale in (old_secret, new_secret):
        with pytest.raises(ValueError, match="does not match"):
            verify_webhook(second.body, header, stale)


def send_test_event(
    platform: Platform, receiver: WebhookReceiver, endpoint_id: str, path: str
) -> ReceivedWebhook:
    sent = api(platform, "POST", f"/api/v1/webhook-endpoints/{endpoint_id}/test")
    assert sent.status_code == 202, sent.text
    delivery_id = sent.json()["delivery_id"]
    webhooks = receiver.wait_for(
        lambda seen: any(w.headers["Checkout-Delivery-Id"] == delivery_id for w in seen),
        "the test event",
        path=path,
    )
    return next(w for w in webhooks if w.headers["Checkout-Delivery-Id"] == delivery_id)


# --- replay -----------------------------------------------------------------------------------


def test_replay_sends_a_time_range_again_in_order(
    platform: Platform, receiver: WebhookReceiver
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    invoice = platform.create_invoice("5")
    api(platform, "POST", f"/api/v1/invoices/{invoice['id']}/cancel", json={})
    # Replay reads the event store, which the projection consumer fills: wait for the cancel.
    eventually(
        lambda: stored_events(invoice["id"]) >= 2, timeout=60, what="the invoice's events stored"
    )
    end = datetime.now(UTC) + timedelta(seconds=1)
    # An endpoint created afterwards: replay is how it gets what happened before it existed.
    endpoint = create_endpoint(platform, receiver.url("/replay"), event_types=["Invoice*"])

    bad = api(
        platform,
        "POST",
        f"/api/v1/webhook-endpoints/{endpoint['id']}/replay",
        json={"from": "yesterday", "to": end.isoformat()},
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "from"
    backwards = api(
        platform,
        "POST",
        f"/api/v1/webhook-endpoints/{endpoint['id']}/replay",
        json={"from": end.isoformat(), "to": start.isoformat()},
    )
    assert backwards.status_code == 400 and backwards.json()["error"]["param"] == "to"

    replay = api(
        platform,
        "POST",
        f"/api/v1/webhook-endpoints/{endpoint['id']}/replay",
        json={"from": start.isoformat(), "to": end.isoformat()},
    )
    assert replay.status_code == 202, replay.text
    assert replay.json()["deliveries"] >= 2

    received = receiver.wait_for(
        lambda seen: any(b["type"] == "InvoiceCancelled" for b in about(invoice["id"], seen)),
        "the replayed InvoiceCancelled",
        path="/replay",
    )
    assert [b["type"] for b in about(invoice["id"], received)] == [
        "InvoiceCreated",
        "InvoiceCancelled",
    ]
    log = deliveries(platform, endpoint["id"], limit="100")
    assert {entry["origin"] for entry in log} == {"replay"}
    # The replay was queued in the background; it says how far it got.
    job = eventually(
        lambda: (
            (r := api(platform, "GET", f"/api/v1/webhook-replays/{replay.json()['id']}"))
            .json()
            .get("status")
            == "done"
            and r.json()
        ),
        timeout=30,
        what="the replay done",
    )
    assert job["queued"] == job["deliveries"] == len(log)


def stored_events(aggregate_id: str) -> int:
    with psycopg2.connect(Settings.from_env().database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM event_store WHERE aggregate_id = %s", (aggregate_id,))
        row = cur.fetchone()
    return int(row[0]) if row else 0


# --- the API refuses what it must -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({}, "url", "parameter_missing"),
        ({"url": 42}, "url", "parameter_invalid"),
        ({"url": "ftp://example.com/hook"}, "url", "url_not_allowed"),
        ({"url": "http://10.1.2.3/hook"}, "url", "url_not_allowed"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, "url", "url_not_allowed"),
        ({"url": "http://127.0.0.1:1/x", "event_types": ["NoSuchEvent"]}, "event_types", None),
        ({"url": "http://127.0.0.1:1/x", "event_types": []}, "event_types", None),
        ({"url": "http://127.0.0.1:1/x", "enabled": "yes"}, "enabled", None),
        ({"url": "http://127.0.0.1:1/x", "secret": "mine"}, "secret", "parameter_unknown"),
    ],
)
def test_bad_endpoint_input_is_a_400_naming_the_field(
    platform: Platform, body: dict[str, Any], param: str, code: str | None
) -> None:
    response = api(platform, "POST", "/api/v1/webhook-endpoints", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code


def test_another_merchant_cannot_see_or_touch_my_endpoints(
    platform: Platform, receiver: WebhookReceiver
) -> None:
    endpoint = create_endpoint(platform, receiver.url("/mine"))
    other = platform.other_api_key
    for method, path in [
        ("GET", f"/api/v1/webhook-endpoints/{endpoint['id']}"),
        ("PATCH", f"/api/v1/webhook-endpoints/{endpoint['id']}"),
        ("DELETE", f"/api/v1/webhook-endpoints/{endpoint['id']}"),
        ("POST", f"/api/v1/webhook-endpoints/{endpoint['id']}/test"),
        ("POST", f"/api/v1/webhook-endpoints/{endpoint['id']}/rotate-secret"),
        ("GET", f"/api/v1/webhook-endpoints/{endpoint['id']}/deliveries"),
    ]:
        kwargs: dict[str, Any] = {"json": {}} if method in ("PATCH", "POST") else {}
        response = api(platform, method, path, api_key=other, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
    listed = api(platform, "GET", "/api/v1/webhook-endpoints", api_key=other).json()["data"]
    assert endpoint["id"] not in {item["id"] for item in listed}

    # Deleting stops deliveries; the endpoint is gone for its merchant too.
    deleted = api(platform, "DELETE", f"/api/v1/webhook-endpoints/{endpoint['id']}")
    assert deleted.status_code == 204
    gone = api(platform, "GET", f"/api/v1/webhook-endpoints/{endpoint['id']}")
    assert gone.status_code == 404
