"""The merchant's webhook API: endpoints, their secrets, the delivery log, redelivery and replay.

The views parse and present; app/services/webhook_endpoints.py does the work (PostgreSQL through
app/adapters/postgres/webhook_store.py, deliveries queued and published on
``crypto-checkout.notifications``). A merchant only ever sees their own endpoints and deliveries:
another merchant's id is a 404 like an unknown one. docs/webhooks.md is the merchant's guide.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from aiohttp import web as aioweb

from app.adapters.postgres.webhook_store import decode_cursor, encode_cursor
from app.adapters.webhooks.ssrf import (
    BlockedAddress,
    UnsafeUrl,
    UrlPolicy,
    resolve_and_check,
    validate_endpoint_url,
)
from app.domain.access import Scope
from app.domain.webhooks import (
    Attempt,
    Delivery,
    EndpointSettings,
    ReplayJob,
    WebhookEndpoint,
    known_event_types,
    validate_event_type_filters,
)
from app.services.ports import DeliveryQuery
from app.services.webhook_endpoints import WebhookEndpoints
from web.auth import Authenticator
from web.errors import ApiError
from web.input import read_json_object, time_field, whole_number
from web.presenters import format_time
from web.requests import page_limit

logger = logging.getLogger(__name__)

MAX_EVENT_TYPE_FILTERS: Final = 50
DEFAULT_GRACE: Final = timedelta(hours=24)
MAX_GRACE: Final = timedelta(days=7)
DELIVERY_STATUSES: Final = ("pending", "succeeded", "failed")
_ENDPOINT_FIELDS: Final = {"url", "event_types", "description", "enabled"}


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


def replay_view(job: ReplayJob) -> dict[str, Any]:
    return {
        "id": job.replay_id,
        "object": "webhook_replay",
        "endpoint_id": job.endpoint_id,
        "from": format_time(job.start),
        "to": format_time(job.end),
        "deliveries": job.expected,  # what the range held for the endpoint when asked
        "queued": job.queued,
        "status": job.status,
        "created_at": format_time(job.created_at),
        "completed_at": format_time(job.completed_at),
    }


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


def _url(value: Any, policy: UrlPolicy) -> str:
    if not isinstance(value, str):
        raise _bad("url must be a string", "url")
    try:
        return validate_endpoint_url(value, policy)
    except UnsafeUrl as exc:
        raise _bad(f"url is not allowed: {exc}", "url", "url_not_allowed") from None


async def _resolvable(url: str, policy: UrlPolicy) -> None:
    """In production: the host resolves now, and only to public addresses (delivery checks
    again at every attempt: DNS may change). The merchant is not told which address it was."""
    if not policy.resolve_at_registration:
        return
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        await resolve_and_check(parts.hostname or "", port, policy)
    except BlockedAddress as exc:
        logger.warning("webhook URL refused at registration: %s", exc)
        raise _bad(f"url is not allowed: {exc.for_merchant}", "url", "url_not_allowed") from None
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
        return validate_event_type_filters(value, known_event_types())
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


def _endpoint_fields(body: dict[str, Any], policy: UrlPolicy, *, creating: bool) -> dict[str, Any]:
    unknown = sorted(set(body) - _ENDPOINT_FIELDS)
    if unknown:
        raise _bad(
            f"unknown field {unknown[0]}; expected {', '.join(sorted(_ENDPOINT_FIELDS))}",
            unknown[0],
            "parameter_unknown",
        )
    if creating and "url" not in body:
        raise _bad("url is required", "url", "parameter_missing")
    parsers: dict[str, Callable[[Any], Any]] = {
        "url": lambda value: _url(value, policy),
        "event_types": _event_types,
        "description": _description,
        "enabled": _enabled,
    }
    return {name: parsers[name](value) for name, value in body.items()}


def _grace(body: dict[str, Any]) -> timedelta:
    grace_seconds = body.get("grace_period_seconds", int(DEFAULT_GRACE.total_seconds()))
    maximum = int(MAX_GRACE.total_seconds())
    return timedelta(seconds=whole_number(grace_seconds, "grace_period_seconds", 0, maximum))


# --- the views --------------------------------------------------------------------------------


class WebhookApi:
    def __init__(
        self, auth: Authenticator, endpoints: WebhookEndpoints, *, url_policy: UrlPolicy
    ) -> None:
        self._auth = auth
        self._endpoints = endpoints
        self._policy = url_policy

    def add_routes(self, router: aioweb.UrlDispatcher) -> None:
        base = "/api/v1/webhook-endpoints"
        router.add_post(base, self.create_endpoint)
        router.add_get(base, self.list_endpoints)
        router.add_get(base + "/{endpoint_id}", self.get_endpoint)
        router.add_patch(base + "/{endpoint_id}", self.update_endpoint)
        router.add_delete(base + "/{endpoint_id}", self.delete_endpoint)
        router.add_post(base + "/{endpoint_id}/rotate-secret", self.rotate_secret)
        router.add_post(base + "/{endpoint_id}/test", self.send_test_event)
        router.add_get(base + "/{endpoint_id}/deliveries", self.list_deliveries)
        router.add_get(
            "/api/v1/invoices/{invoice_id}/webhook-deliveries", self.list_invoice_deliveries
        )
        router.add_post(base + "/{endpoint_id}/replay", self.replay)
        router.add_get("/api/v1/webhook-replays/{replay_id}", self.get_replay)
        router.add_get("/api/v1/webhook-deliveries/{delivery_id}", self.get_delivery)
        router.add_post("/api/v1/webhook-deliveries/{delivery_id}/redeliver", self.redeliver)

    async def create_endpoint(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.WEBHOOKS_WRITE)
        fields = _endpoint_fields(await read_json_object(request), self._policy, creating=True)
        await _resolvable(fields["url"], self._policy)
        settings = EndpointSettings(
            url=fields["url"],
            event_types=tuple(fields.get("event_types", ["*"])),
            description=fields.get("description"),
            enabled=fields.get("enabled", True),
        )
        endpoint, secret = await self._endpoints.create(merchant.merchant_id, settings)
        return aioweb.json_response(endpoint_view(endpoint, secret), status=201)

    async def list_endpoints(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.WEBHOOKS_READ)
        endpoints = await self._endpoints.endpoints(merchant.merchant_id)
        return aioweb.json_response({"data": [endpoint_view(endpoint) for endpoint in endpoints]})

    async def get_endpoint(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.WEBHOOKS_READ)
        endpoint_id = request.match_info["endpoint_id"]
        endpoint = await self._endpoints.get(merchant.merchant_id, endpoint_id)
        return aioweb.json_response(endpoint_view(endpoint))

    async def update_endpoint(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.WEBHOOKS_WRITE)
        endpoint_id = request.match_info["endpoint_id"]
        changes = _endpoint_fields(await read_json_object(request), self._policy, creating=False)
        if "url" in changes:
            await _resolvable(changes["url"], self._policy)
        endpoint = await self._endpoints.update(merchant.merchant_id, endpoint_id, changes)
        return aioweb.json_response(endpoint_view(endpoint))

    async def delete_endpoint(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.WEBHOOKS_WRITE)
        await self._endpoints.delete(merchant.merchant_id, request.match_info["endpoint_id"])
        return aioweb.Response(status=204)

    async def rotate_secret(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.WEBHOOKS_WRITE)
        endpoint_id = request.match_info["endpoint_id"]
        grace = _grace(await read_json_object(request, allow_empty=True))
        endpoint, secret = await self._endpoints.rotate_secret(
            merchant.merchant_id, endpoint_id, grace
        )
        return aioweb.json_response(endpoint_view(endpoint, secret))

    async def send_test_event(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.WEBHOOKS_WRITE)
        notification = await self._endpoints.send_test(
            merchant.merchant_id, request.match_info["endpoint_id"], now=datetime.now(UTC)
        )
        return aioweb.json_response(
            {"delivery_id": notification.delivery_id, "event_id": notification.event["event_id"]},
            status=202,
        )

    async def list_deliveries(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.WEBHOOKS_READ)
        endpoint = await self._endpoints.get(
            merchant.merchant_id, request.match_info["endpoint_id"]
        )
        page = await self._endpoints.deliveries(
            merchant.merchant_id, endpoint.endpoint_id, _delivery_query(request)
        )
        return _delivery_page(*page)

    async def list_invoice_deliveries(self, request: aioweb.Request) -> aioweb.Response:
        """Every delivery of one invoice's events, whichever endpoint it went to."""
        merchant = await self._auth.merchant(request, Scope.WEBHOOKS_READ)
        page = await self._endpoints.invoice_deliveries(
            merchant.merchant_id, request.match_info["invoice_id"], _delivery_query(request)
        )
        return _delivery_page(*page)

    async def get_delivery(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.WEBHOOKS_READ)
        delivery, event, attempts = await self._endpoints.delivery(
            merchant.merchant_id, request.match_info["delivery_id"]
        )
        return aioweb.json_response(
            {
                **delivery_view(delivery),
                "event": event,
                "attempts": [attempt_view(attempt) for attempt in attempts],
            }
        )

    async def redeliver(self, request: aioweb.Request) -> aioweb.Response:
        """Send a delivery's event again, as a new delivery (the original's log is kept)."""
        merchant = await self._auth.merchant(request, Scope.WEBHOOKS_WRITE)
        notification = await self._endpoints.redeliver(
            merchant.merchant_id, request.match_info["delivery_id"]
        )
        return aioweb.json_response(
            {"delivery_id": notification.delivery_id, "redelivery_of": notification.redelivery_of},
            status=202,
        )

    async def replay(self, request: aioweb.Request) -> aioweb.Response:
        """Queue again every event of a time range that the endpoint wants, in their order."""
        merchant = await self._auth.merchant(request, Scope.WEBHOOKS_WRITE)
        endpoint_id = request.match_info["endpoint_id"]
        await self._endpoints.enabled(merchant.merchant_id, endpoint_id)  # 404, 422 first
        body = await read_json_object(request)
        start, end = time_field(body, "from"), time_field(body, "to")
        if end <= start:
            raise _bad("to must be after from", "to")
        job = await self._endpoints.replay(merchant.merchant_id, endpoint_id, start, end)
        return aioweb.json_response(replay_view(job), status=202)

    async def get_replay(self, request: aioweb.Request) -> aioweb.Response:
        merchant = await self._auth.merchant(request, Scope.WEBHOOKS_READ)
        job = await self._endpoints.replay_job(
            merchant.merchant_id, request.match_info["replay_id"]
        )
        return aioweb.json_response(replay_view(job))


def _delivery_query(request: aioweb.Request) -> DeliveryQuery:
    status = request.query.get("status")
    if status is not None and status not in DELIVERY_STATUSES:
        raise _bad(f"status must be one of {', '.join(DELIVERY_STATUSES)}", "status")
    cursor = request.query.get("cursor")
    try:
        after_seq = None if cursor is None else decode_cursor(cursor)
    except ValueError as exc:
        raise _bad(str(exc), "cursor") from None
    return DeliveryQuery(status=status, limit=page_limit(request), after_seq=after_seq)


def _delivery_page(deliveries: list[Delivery], has_more: bool) -> aioweb.Response:
    return aioweb.json_response(
        {
            "data": [delivery_view(delivery) for delivery in deliveries],
            "has_more": has_more,
            "next_cursor": encode_cursor(deliveries[-1].seq) if has_more else None,
        }
    )
