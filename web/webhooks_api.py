"""The merchant's webhook API: endpoints, their secrets, the delivery log, redelivery and replay.

Everything here reads and writes PostgreSQL (app/adapters/postgres/webhook_store.py); deliveries it
creates (test, redelivery, replay) are queued at once — so the answer can name them — and published
on ``crypto-checkout.notifications`` like every other delivery (the intake then finds them queued
already). A merchant only ever sees their own endpoints and deliveries: another merchant's id is a
404 like an unknown one. docs/webhooks.md is the merchant's guide to all of it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web as aioweb

from agents.webhooks import publish_notifications, webhooks
from app.adapters.postgres.merchants import Merchant
from app.adapters.postgres.webhook_store import (
    Attempt,
    Delivery,
    Notification,
    WebhookEndpoint,
    decode_cursor,
    encode_cursor,
    new_delivery_id,
)
from app.adapters.webhooks.config import url_policy
from app.adapters.webhooks.ssrf import UnsafeUrl, validate_endpoint_url
from app.domain.events import EVENT_TYPES, SCHEMA_VERSION
from app.domain.webhooks import validate_event_type_filters
from app.faust_app import aiohttp_application, settings
from web.auth import authenticate
from web.errors import ApiError
from web.presenters import format_time
from web.requests import page_limit, read_json_object

TEST_EVENT_TYPE = "WebhookTest"
KNOWN_EVENT_TYPES = (*EVENT_TYPES, TEST_EVENT_TYPE)
MAX_ENDPOINTS_PER_MERCHANT = 20
MAX_EVENT_TYPE_FILTERS = 50
DEFAULT_GRACE = timedelta(hours=24)
MAX_GRACE = timedelta(days=7)
MAX_REPLAY_EVENTS = 10_000
DELIVERY_STATUSES = ("pending", "succeeded", "failed")
_ENDPOINT_FIELDS = {"url", "event_types", "description", "enabled"}


def _bad(message: str, param: str, code: str = "parameter_invalid") -> ApiError:
    return ApiError(400, code, message, param=param)


# --- presenting -------------------------------------------------------------------------------


def endpoint_view(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": endpoint.endpoint_id,
        "object": "webhook_endpoint",
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "disabled_at": format_time(endpoint.disabled_at),
        "failing_since": format_time(endpoint.failing_since),
        "previous_secret_expires_at": format_time(endpoint.previous_secret_expires_at),
        "created_at": format_time(endpoint.created_at),
        "updated_at": format_time(endpoint.updated_at),
    }
    if secret is not None:
        view["secret"] = secret  # shown at creation and rotation only; stored encrypted
    return view


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.delivery_id,
        "object": "webhook_delivery",
        "endpoint_id": delivery.endpoint_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "aggregate_id": delivery.aggregate_id,
        "origin": delivery.origin,
        "redelivery_of": delivery.redelivery_of,
        "status": delivery.status,
        "attempt_count": delivery.attempts,
        "next_attempt_at": format_time(delivery.next_attempt_at)
        if delivery.status == "pending"
        else None,
        "last_error": delivery.last_error,
        "created_at": format_time(delivery.created_at),
        "completed_at": format_time(delivery.completed_at),
    }


def attempt_view(attempt: Attempt) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "started_at": format_time(attempt.started_at),
        "latency_ms": attempt.latency_ms,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "response_excerpt": attempt.response_excerpt,
    }


# --- reading requests -------------------------------------------------------------------------


def _url(value: Any) -> str:
    if not isinstance(value, str):
        raise _bad("url must be a string", "url")
    try:
        return validate_endpoint_url(value, url_policy(settings))
    except UnsafeUrl as exc:
        raise _bad(f"url is not allowed: {exc}", "url", "url_not_allowed") from None


def _event_types(value: Any) -> list[str]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(item, str) for item in value)
        or len(value) > MAX_EVENT_TYPE_FILTERS
    ):
        raise _bad(
            f"event_types must be a list of 1 to {MAX_EVENT_TYPE_FILTERS} event type names "
            "('*' for all, 'Invoice*' for a family)",
            "event_types",
        )
    try:
        return validate_event_type_filters(value, KNOWN_EVENT_TYPES)
    except ValueError as exc:
        raise _bad(str(exc), "event_types") from None


def _description(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 500:
        raise _bad("description must be a string of at most 500 characters", "description")
    return value


def _enabled(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad("enabled must be true or false", "enabled")
    return value


def _endpoint_fields(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    unknown = sorted(set(body) - _ENDPOINT_FIELDS)
    if unknown:
        raise _bad(
            f"unknown field {unknown[0]}; expected {', '.join(sorted(_ENDPOINT_FIELDS))}",
            unknown[0],
            "parameter_unknown",
        )
    if creating and "url" not in body:
        raise _bad("url is required", "url", "parameter_missing")
    parsers = {
        "url": _url,
        "event_types": _event_types,
        "description": _description,
        "enabled": _enabled,
    }
    return {name: parsers[name](value) for name, value in body.items()}


def _time_param(body: dict[str, Any], name: str) -> datetime:
    value = body.get(name)
    if not isinstance(value, str):
        raise _bad(f"{name} is required: an RFC 3339 time such as 2026-11-22T10:00:00Z", name)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _bad(f"{name} is not an RFC 3339 time: {value!r}", name) from None
    if moment.tzinfo is None:
        raise _bad(f"{name} needs a time zone (Z or +hh:mm)", name)
    return moment


# --- lookups ----------------------------------------------------------------------------------


async def _own_endpoint(merchant: Merchant, request: aioweb.Request) -> WebhookEndpoint:
    endpoint_id = request.match_info["endpoint_id"]
    endpoint = await webhooks.store.endpoint(merchant.merchant_id, endpoint_id)
    if endpoint is None:
        raise _endpoint_not_found(endpoint_id)
    return endpoint


def _endpoint_not_found(endpoint_id: str) -> ApiError:
    return ApiError(
        404, "webhook_endpoint_not_found", f"no webhook endpoint {endpoint_id}", param="endpoint_id"
    )


def _must_be_enabled(endpoint: WebhookEndpoint) -> None:
    if not endpoint.enabled:
        raise ApiError(
            422,
            "webhook_endpoint_disabled",
            f"webhook endpoint {endpoint.endpoint_id} is disabled ({endpoint.disabled_reason}); "
            "enable it first (PATCH with enabled=true)",
            param="endpoint_id",
        )


async def _queue(notifications: list[Notification]) -> None:
    for notification in notifications:
        await webhooks.store.enqueue(notification)
    await publish_notifications(notifications)
    webhooks.wake()


# --- endpoints --------------------------------------------------------------------------------


async def create_endpoint(request: aioweb.Request) -> aioweb.Response:
    merchant = await authenticate(request)
    fields = _endpoint_fields(await read_json_object(request), creating=True)
    existing = await webhooks.store.endpoints(merchant.merchant_id)
    if len(existing) >= MAX_ENDPOINTS_PER_MERCHANT:
        raise ApiError(
            422,
            "webhook_endpoint_limit",
            f"a merchant can have at most {MAX_ENDPOINTS_PER_MERCHANT} webhook endpoints",
        )
    endpoint, secret = await webhooks.store.create_endpoint(
        merchant.merchant_id,
        url=fields["url"],
        event_types=fields.get("event_types", ["*"]),
        description=fields.get("description"),
        enabled=fields.get("enabled", True),
    )
    return aioweb.json_response(endpoint_view(endpoint, secret), status=201)


async def list_endpoints(request: aioweb.Request) -> aioweb.Response:
    merchant = await authenticate(request)
    endpoints = await webhooks.store.endpoints(merchant.merchant_id)
    return aioweb.json_response({"data": [endpoint_view(endpoint) for endpoint in endpoints]})


async def get_endpoint(request: aioweb.Request) -> aioweb.Response:
    merchant = await authenticate(request)
    return aioweb.json_response(endpoint_view(await _own_endpoint(merchant, request)))


async def update_endpoint(request: aioweb.Request) -> aioweb.Response:
    merchant = await authenticate(request)
    endpoint_id = request.match_info["endpoint_id"]
    changes = _endpoint_fields(await read_json_object(request), creating=False)
    endpoint = await webhooks.store.update_endpoint(merchant.merchant_id, endpoint_id, changes)
    if endpoint is None:
        raise _endpoint_not_found(endpoint_id)
    if endpoint.enabled:
        webhooks.wake()  # its pending deliveries may go now
    return aioweb.json_response(endpoint_view(endpoint))


async def delete_endpoint(request: aioweb.Request) -> aioweb.Response:
    merchant = await authenticate(request)
    endpoint_id = request.match_info["endpoint_id"]
    if not await webhooks.store.delete_endpoint(merchant.merchant_id, endpoint_id):
        raise _endpoint_not_found(endpoint_id)
    return aioweb.Response(status=204)


async def rotate_secret(request: aioweb.Request) -> aioweb.Response:
    merchant = await authenticate(request)
    endpoint_id = request.match_info["endpoint_id"]
    body = await read_json_object(request, allow_empty=True)
    grace_seconds = body.get("grace_period_seconds", int(DEFAULT_GRACE.total_seconds()))
    if (
        not isinstance(grace_seconds, int)
        or isinstance(grace_seconds, bool)
        or not 0 <= grace_seconds <= MAX_GRACE.total_seconds()
    ):
        raise _bad(
            "grace_period_seconds must be a whole number from 0 to "
            f"{int(MAX_GRACE.total_seconds())}",
            "grace_period_seconds",
        )
    rotated = await webhooks.store.rotate_secret(
        merchant.merchant_id, endpoint_id, timedelta(seconds=grace_seconds)
    )
    if rotated is None:
        raise _endpoint_not_found(endpoint_id)
    endpoint, secret = rotated
    return aioweb.json_response(endpoint_view(endpoint, secret))


async def send_test_event(request: aioweb.Request) -> aioweb.Response:
    merchant = await authenticate(request)
    endpoint = await _own_endpoint(merchant, request)
    _must_be_enabled(endpoint)
    now = datetime.now(UTC)
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": TEST_EVENT_TYPE,
        "schema_version": SCHEMA_VERSION,
        "aggregate_type": "webhook_endpoint",
        "aggregate_id": endpoint.endpoint_id,
        "aggregate_version": endpoint.version,
        "merchant_id": merchant.merchant_id,
        "causation_id": f"test:{endpoint.endpoint_id}",
        "occurred_at": format_time(now),
        "data": {"message": "a test event sent from the API; nothing happened to any invoice"},
    }
    notification = Notification(
        delivery_id=new_delivery_id(),
        endpoint_id=endpoint.endpoint_id,
        merchant_id=merchant.merchant_id,
        origin="test",
        event=event,
    )
    await _queue([notification])
    return aioweb.json_response(
        {"delivery_id": notification.delivery_id, "event_id": event["event_id"]}, status=202
    )


# --- deliveries -------------------------------------------------------------------------------


async def list_deliveries(request: aioweb.Request) -> aioweb.Response:
    merchant = await authenticate(request)
    endpoint = await _own_endpoint(merchant, request)
    status = request.query.get("status")
    if status is not None and status not in DELIVERY_STATUSES:
        raise _bad(f"status must be one of {', '.join(DELIVERY_STATUSES)}", "status")
    cursor = request.query.get("cursor")
    try:
        after_seq = None if cursor is None else decode_cursor(cursor)
    except ValueError as exc:
        raise _bad(str(exc), "cursor") from None
    deliveries, has_more = await webhooks.store.deliveries(
        merchant.merchant_id,
        endpoint.endpoint_id,
        status=status,
        limit=page_limit(request),
        after_seq=after_seq,
    )
    return aioweb.json_response(
        {
            "data": [delivery_view(delivery) for delivery in deliveries],
            "has_more": has_more,
            "next_cursor": encode_cursor(deliveries[-1].seq) if has_more else None,
        }
    )


async def get_delivery(request: aioweb.Request) -> aioweb.Response:
    merchant = await authenticate(request)
    delivery_id = request.match_info["delivery_id"]
    found = await webhooks.store.delivery(merchant.merchant_id, delivery_id)
    if found is None:
        raise _delivery_not_found(delivery_id)
    delivery, event, attempts = found
    return aioweb.json_response(
        {
            **delivery_view(delivery),
            "event": event,
            "attempts": [attempt_view(attempt) for attempt in attempts],
        }
    )


def _delivery_not_found(delivery_id: str) -> ApiError:
    return ApiError(
        404, "webhook_delivery_not_found", f"no webhook delivery {delivery_id}", param="delivery_id"
    )


async def redeliver(request: aioweb.Request) -> aioweb.Response:
    """Send a delivery's event again, as a new delivery (the original's log is kept)."""
    merchant = await authenticate(request)
    delivery_id = request.match_info["delivery_id"]
    found = await webhooks.store.delivery(merchant.merchant_id, delivery_id)
    if found is None:
        raise _delivery_not_found(delivery_id)
    original, event, _ = found
    endpoint = await webhooks.store.endpoint(merchant.merchant_id, original.endpoint_id)
    if endpoint is None:
        raise ApiError(
            422,
            "webhook_endpoint_deleted",
            f"the endpoint of delivery {delivery_id} was deleted",
            param="delivery_id",
        )
    _must_be_enabled(endpoint)
    notification = Notification(
        delivery_id=new_delivery_id(),
        endpoint_id=endpoint.endpoint_id,
        merchant_id=merchant.merchant_id,
        origin="redelivery",
        event=event,
        redelivery_of=original.delivery_id,
    )
    await _queue([notification])
    return aioweb.json_response(
        {"delivery_id": notification.delivery_id, "redelivery_of": original.delivery_id},
        status=202,
    )


async def replay(request: aioweb.Request) -> aioweb.Response:
    """Queue again every event of a time range that the endpoint wants, in their order."""
    merchant = await authenticate(request)
    endpoint = await _own_endpoint(merchant, request)
    _must_be_enabled(endpoint)
    body = await read_json_object(request)
    start, end = _time_param(body, "from"), _time_param(body, "to")
    if end <= start:
        raise _bad("to must be after from", "to")
    events = await webhooks.store.events_between(
        merchant.merchant_id, start, end, MAX_REPLAY_EVENTS + 1
    )
    if len(events) > MAX_REPLAY_EVENTS:
        raise ApiError(
            422,
            "replay_too_large",
            f"the range holds more than {MAX_REPLAY_EVENTS} events; replay a shorter range",
            param="to",
        )
    notifications = [
        Notification(
            delivery_id=new_delivery_id(),
            endpoint_id=endpoint.endpoint_id,
            merchant_id=merchant.merchant_id,
            origin="replay",
            event=event,
        )
        for event in events
        if endpoint.wants(event["event_type"])
    ]
    await _queue(notifications)
    return aioweb.json_response(
        {"deliveries": len(notifications), "from": format_time(start), "to": format_time(end)},
        status=202,
    )


def _register_routes(router: aioweb.UrlDispatcher) -> None:
    base = "/api/v1/webhook-endpoints"
    router.add_post(base, create_endpoint)
    router.add_get(base, list_endpoints)
    router.add_get(base + "/{endpoint_id}", get_endpoint)
    router.add_patch(base + "/{endpoint_id}", update_endpoint)
    router.add_delete(base + "/{endpoint_id}", delete_endpoint)
    router.add_post(base + "/{endpoint_id}/rotate-secret", rotate_secret)
    router.add_post(base + "/{endpoint_id}/test", send_test_event)
    router.add_get(base + "/{endpoint_id}/deliveries", list_deliveries)
    router.add_post(base + "/{endpoint_id}/replay", replay)
    router.add_get("/api/v1/webhook-deliveries/{delivery_id}", get_delivery)
    router.add_post("/api/v1/webhook-deliveries/{delivery_id}/redeliver", redeliver)


_register_routes(aiohttp_application().router)
