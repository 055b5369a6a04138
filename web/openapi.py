"""``GET /openapi.json``: every HTTP endpoint of a worker, for integrators and their tools.

Kept next to the routes it describes; a test compares its paths with the routes the aiohttp
application really serves, so an endpoint cannot be added without being described.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web as aioweb

from app.domain.access import MERCHANT_ROLES, Role, Scope
from app.domain.notifications import Channel, Notice
from web.exports_api import INVOICES_HEADER, SETTLEMENTS_HEADER

_AMOUNT = {"type": "string", "pattern": r"^\d+(\.\d{1,6})?$", "example": "9.99"}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_ERROR = {"$ref": "#/components/schemas/Error"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "malformed input; error.param names the field",
        401: "missing or invalid API key",
        404: "unknown, or another merchant's",
        409: "Idempotency-Key reused with another body",
        403: "the credential lacks the scope, the merchant is suspended, or not the admin",
        413: "body too large",
        429: "too many attempts or requests; see Retry-After",
        422: "a business rule refuses it (error.message names the status and the allowed ones)",
        503: "temporarily unavailable (rebalancing, or the agent did not answer in time); retry",
    }
    return {str(status): _json(_ERROR, text[status]) for status in statuses}


_INVOICE_ID = {"name": "invoice_id", "in": "path", "required": True, "schema": {"type": "string"}}
_MERCHANT: list[dict[str, list[str]]] = [{"bearerAuth": []}]

INVOICE_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "example": "inv_0123456789abcdef01234567"},
    "object": {"const": "invoice"},
    "merchant_id": {"type": "string"},
    "status": {"enum": ["pending", "confirming", "paid", "expired", "cancelled"]},
    "payment_exception": {"enum": ["underpaid", "overpaid", "paid_late", None]},
    "amount": _AMOUNT,
    "currency": {"const": "USDT"},
    "amount_received": _AMOUNT,
    "amount_confirmed": _AMOUNT,
    "amount_due": _AMOUNT,
    "deposit_address": {"type": "string", "example": "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"},
    "required_confirmations": {"type": "integer"},
    "fee_percentage": {"type": "string", "example": "1"},
    "created_at": _TIME,
    "expires_at": _TIME,
    "paid_at": _TIME,
    "expired_at": _TIME,
    "cancelled_at": _TIME,
    "cancellation_reason": {"type": ["string", "null"]},
    "order_id": {"type": ["string", "null"]},
    "description": {"type": ["string", "null"]},
    "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
    "redirect_url": {"type": ["string", "null"]},
    "cancel_url": {"type": ["string", "null"]},
    "resolution": {
        "enum": ["accept", "refund", "extend", None],
        "description": "how an underpayment was resolved (POST …/resolve, or the tolerance)",
    },
    "underpaid_tolerance": {
        "type": ["string", "null"],
        "description": "percent of the amount accepted at expiry when underpaid",
    },
    "payments": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "payment_id": {"type": "string", "description": "<tx hash>:<log index>"},
                "amount": _AMOUNT,
                "confirmed": {"type": "boolean"},
                "late": {"type": "boolean"},
            },
        },
    },
    "payment_url": {"type": "string", "example": "/pay/inv_0123456789abcdef01234567"},
    "version": {"type": "integer"},
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["type", "code", "message", "param"],
                "properties": {
                    "type": {"type": "string", "example": "invalid_request_error"},
                    "code": {"type": "string", "example": "amount_too_many_decimals"},
                    "message": {"type": "string"},
                    "param": {"type": ["string", "null"], "example": "amount"},
                },
            }
        },
    },
    "CreateInvoice": {
        "type": "object",
        "required": ["amount"],
        "additionalProperties": False,
        "properties": {
            "amount": {
                "description": "USDT as a decimal string (or JSON number), at most 6 decimals",
                **_AMOUNT,
            },
            "order_id": {"type": "string", "maxLength": 200},
            "description": {"type": "string", "maxLength": 1000},
            "expires_in": {
                "type": "integer",
                "description": "seconds until expiry (INVOICE_MIN/MAX_EXPIRES_IN bound it)",
                "example": 900,
            },
            "metadata": {
                "type": "object",
                "maxProperties": 50,
                "additionalProperties": {"type": "string", "maxLength": 500},
            },
            "redirect_url": {
                "type": "string",
                "maxLength": 2048,
                "description": "https URL the payment page offers as 'Back to the shop' once paid;"
                " {invoice_id} and {order_id} are filled in",
                "example": "https://shop.example/orders/{order_id}/thanks",
            },
            "cancel_url": {
                "type": "string",
                "maxLength": 2048,
                "description": "offered instead once the invoice expired or was cancelled",
                "example": "https://shop.example/cart",
            },
        },
    },
    "Invoice": {"type": "object", "properties": INVOICE_PROPERTIES},
    "InvoiceSummary": {
        "type": "object",
        "description": "An invoice as the lists show it: the Invoice without payments, from the "
        "read model, so it may trail the invoice by the projection (usually well under a "
        "second); version and updated_at tell which change it reflects",
        "properties": {
            **{name: schema for name, schema in INVOICE_PROPERTIES.items() if name != "payments"},
            "updated_at": _TIME,
            "tx_hashes": {
                "type": "array",
                "items": {"type": "string"},
                "description": "every transfer detected for the invoice, in order of detection",
            },
            "confirmations": {
                "type": "integer",
                "description": "what the latest payment event reported (0 after a reorg)",
            },
        },
    },
    "InvoiceList": {
        "type": "object",
        "required": ["data", "has_more", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": _ref("InvoiceSummary")},
            "has_more": {"type": "boolean"},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "pass as cursor for the next page; null on the last page",
            },
        },
    },
    "Settlement": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "settlement"},
            "invoice_id": {"type": "string"},
            "gross_amount": _AMOUNT,
            "platform_fee_amount": _AMOUNT,
            "platform_fee_percentage": {"type": "string", "example": "1"},
            "net_amount": _AMOUNT,
            "currency": {"const": "USDT"},
            "status": {"enum": ["pending", "completed", "failed", "reversed"]},
            "created_at": _TIME,
            "completed_at": _TIME,
        },
    },
    "PublicInvoice": {
        "type": "object",
        "description": "What the customer sees: never any fee (docs/payment-page.md)",
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string"},
            "payment_exception": {"type": ["string", "null"]},
            "total": _AMOUNT,
            "usdt_amount": _AMOUNT,
            "amount_received": _AMOUNT,
            "amount_confirmed": _AMOUNT,
            "amount_due": _AMOUNT,
            "deposit_address": {"type": "string"},
            "network": {"const": "tron"},
            "token_contract": {"type": "string"},
            "required_confirmations": {"type": "integer"},
            "confirmations": {"type": "integer"},
            "payments": {"type": "array", "items": {"type": "object"}},
            "expires_at": _TIME,
            "resolution": {
                "enum": ["accept", "refund", "extend", None],
                "description": "the merchant's decision about an underpayment, if any",
            },
            "version": {"type": "integer"},
        },
    },
}


_COUNTS = {"type": "integer", "minimum": 0}
SCHEMAS.update(
    {
        "ReportSummary": {
            "type": "object",
            "description": "Everything since your first invoice, from the read models "
            "(docs/reports.md): they trail the invoices by the projection",
            "properties": {
                "object": {"const": "report_summary"},
                "currency": {"const": "USDT"},
                "gross_volume": _AMOUNT,
                "fees": _AMOUNT,
                "net_volume": _AMOUNT,
                "balance": _AMOUNT,
                "settlements": _COUNTS,
                "invoices_created": _COUNTS,
                "invoices_paid": _COUNTS,
                "invoices_by_status": {"type": "object", "additionalProperties": _COUNTS},
                "invoices_by_exception": {"type": "object", "additionalProperties": _COUNTS},
                "conversion_rate": {
                    "type": ["number", "null"],
                    "description": "invoices paid ÷ invoices created (4 decimals); null before any",
                },
                "average_seconds_to_paid": {
                    "type": ["number", "null"],
                    "description": "from creation to paid, averaged over the paid invoices",
                },
                "updated_at": _TIME,
            },
        },
        "DailyReport": {
            "type": "object",
            "properties": {
                "object": {"const": "list"},
                "from": {"type": "string", "format": "date"},
                "to": {"type": "string", "format": "date"},
                "currency": {"const": "USDT"},
                "data": {
                    "type": "array",
                    "description": "one entry per UTC day from `from` to `to`, zeros included",
                    "items": {
                        "type": "object",
                        "properties": {
                            "date": {"type": "string", "format": "date"},
                            "gross_volume": _AMOUNT,
                            "fees": _AMOUNT,
                            "net_volume": _AMOUNT,
                            "settlements": _COUNTS,
                            "invoices_created": _COUNTS,
                            "invoices_paid": _COUNTS,
                            "invoices_expired": _COUNTS,
                        },
                    },
                },
            },
        },
        "Balance": {
            "type": "object",
            "properties": {
                "object": {"const": "balance"},
                "currency": {"const": "USDT"},
                "available": {
                    **_AMOUNT,
                    "description": "net credited to your ledger account, less refunds and payouts",
                },
                "in_flight": {
                    **_AMOUNT,
                    "description": "incoming + outgoing: neither available nor final",
                },
                "incoming": {
                    **_AMOUNT,
                    "description": "received on open invoices, waiting for confirmations (gross)",
                },
                "outgoing": {
                    **_AMOUNT,
                    "description": "refunds and payouts debited, not yet final on chain",
                },
            },
        },
    }
)
_DAY = {"type": "string", "format": "date", "example": "2026-11-01"}
_DAY_RANGE = [
    {
        "name": "from",
        "in": "query",
        "schema": _DAY,
        "description": "first UTC day (default: 29 days before to)",
    },
    {
        "name": "to",
        "in": "query",
        "schema": _DAY,
        "description": "last UTC day, included (default: today); 366 days at most",
    },
]
_SETTLEMENT_CSV = SETTLEMENTS_HEADER
_INVOICE_CSV = INVOICES_HEADER


def _csv(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/csv": {"schema": {"type": "string"}}}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def _comma_separated(values: list[str]) -> dict[str, Any]:
    return {"type": "string", "pattern": f"^({'|'.join(values)})(,({'|'.join(values)}))*$"}


_INSTANT = {"type": "string", "format": "date-time", "example": "2024-05-01T00:00:00Z"}
_LIST_INVOICES_PARAMETERS = [
    _query(
        "status",
        _comma_separated(["pending", "confirming", "paid", "expired", "cancelled"]),
        "only these statuses, comma-separated (status=pending,confirming)",
    ),
    _query(
        "payment_exception",
        _comma_separated(["underpaid", "overpaid", "paid_late"]),
        "only these payment exceptions, comma-separated",
    ),
    _query("order_id", {"type": "string", "maxLength": 200}, "only invoices of this order"),
    _query("created_from", _INSTANT, "created at or after (RFC 3339; URL-encode + as %2B)"),
    _query("created_to", _INSTANT, "created before, exclusive (RFC 3339)"),
    _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
        "invoices per page",
    ),
    _query("cursor", {"type": "string"}, "next_cursor of the previous page, as is"),
]

PATHS: dict[str, Any] = {
    "/api/v1/invoices": {
        "post": {
            "summary": "Create an invoice with its own deposit address",
            "security": _MERCHANT,
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 128,
                        "pattern": "^[\\x20-\\x7e]+$",
                    },
                    "description": "1 to 128 printable ASCII characters; the same key and body → "
                    "the same invoice, another body → 409",
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("CreateInvoice")}},
            },
            "responses": {
                "201": _json(_ref("Invoice"), "created"),
                "200": _json(_ref("Invoice"), "replayed (Idempotent-Replayed: true)"),
                **_errors(400, 401, 409, 413, 503),
            },
        },
        "get": {
            "summary": "Your invoices, newest first, filtered and paginated",
            "description": "Served from the invoice read model, which is eventually consistent: "
            "a new invoice appears, and a change of status shows, once the projection has "
            "applied its event (usually well under a second later). GET "
            "/api/v1/invoices/{invoice_id} is always current. Pages are keyset-paginated: "
            "invoices created while you page through do not shift or repeat the later pages.",
            "security": _MERCHANT,
            "parameters": _LIST_INVOICES_PARAMETERS,
            "responses": {
                "200": _json(_ref("InvoiceList"), "one page of invoices"),
                **_errors(400, 401),
            },
        },
    },
    "/api/v1/invoices/{invoice_id}": {
        "get": {
            "summary": "One invoice, from the worker that owns it",
            "security": _MERCHANT,
            "parameters": [_INVOICE_ID],
            "responses": {"200": _json(_ref("Invoice"), "the invoice"), **_errors(401, 404, 503)},
        }
    },
    "/api/v1/invoices/{invoice_id}/cancel": {
        "post": {
            "summary": "Cancel a pending invoice",
            "security": _MERCHANT,
            "parameters": [_INVOICE_ID],
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"reason": {"type": "string", "maxLength": 500}},
                        }
                    }
                },
            },
            "responses": {
                "200": _json(_ref("Invoice"), "cancelled"),
                **_errors(400, 401, 404, 422, 503),
            },
        }
    },
    "/api/v1/invoices/{invoice_id}/settlement": {
        "get": {
            "summary": "The settlement of a paid invoice",
            "security": _MERCHANT,
            "parameters": [_INVOICE_ID],
            "responses": {
                "200": _json(_ref("Settlement"), "the settlement"),
                **_errors(401, 404, 503),
            },
        }
    },
    "/api/v1/settlements": {
        "get": {
            "summary": "Your settlements, newest first, page by page (keyset cursor)",
            "security": _MERCHANT,
            "parameters": [
                {"name": "invoice_id", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "pending, completed, failed; comma-separated for several",
                },
                {
                    "name": "created_from",
                    "in": "query",
                    "schema": {"type": "string", "format": "date-time"},
                },
                {
                    "name": "created_to",
                    "in": "query",
                    "schema": {"type": "string", "format": "date-time"},
                },
                {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "data": {"type": "array", "items": _ref("Settlement")},
                            "has_more": {"type": "boolean"},
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    },
                    "settlements",
                ),
                **_errors(400, 401),
            },
        }
    },
    "/api/v1/settlements/{settlement_id}": {
        "get": {
            "summary": "One settlement",
            "security": _MERCHANT,
            "parameters": [
                {
                    "name": "settlement_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
            ],
            "responses": {"200": _json(_ref("Settlement"), "the settlement"), **_errors(401, 404)},
        }
    },
    "/api/v1/public/invoice/{invoice_id}": {
        "get": {
            "summary": "The customer's view of an invoice (no authentication, no fees)",
            "parameters": [_INVOICE_ID],
            "responses": {"200": _json(_ref("PublicInvoice"), "the view"), **_errors(404, 503)},
        }
    },
    "/api/v1/public/invoice/{invoice_id}/ws": {
        "get": {
            "summary": "WebSocket: the current view, then one JSON text message per change",
            "parameters": [_INVOICE_ID],
            "responses": {
                "101": {"description": "switching protocols"},
                "400": _json(_ERROR, "not a WebSocket upgrade request"),
                **_errors(404, 503),
            },
        }
    },
    "/api/v1/public/invoice/{invoice_id}/events": {
        "get": {
            "summary": "Server-Sent Events fallback: `event: invoice` with the view as data",
            "parameters": [_INVOICE_ID],
            "responses": {
                "200": {"description": "text/event-stream"},
                "204": {"description": "settled, and nothing newer than Last-Event-ID"},
                **_errors(404, 503),
            },
        }
    },
    "/pay/{invoice_id}": {
        "get": {
            "summary": "The customer's payment page (HTML)",
            "parameters": [_INVOICE_ID],
            "responses": {
                "200": {"description": "text/html"},
                "404": {"description": "HTML"},
                "503": {"description": "HTML"},
            },
        }
    },
    "/healthz": {
        "get": {"summary": "The process answers", "responses": {"200": {"description": "alive"}}}
    },
    "/readyz": {
        "get": {
            "summary": (
                "Kafka, PostgreSQL, Redis reachable and partitions owned (the details, and "
                "/metrics, are on the operators' listener: INTERNAL_BIND:INTERNAL_PORT)"
            ),
            "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
        }
    },
    "/openapi.json": {
        "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}
    },
}


# --- webhooks (docs/webhooks.md) ------------------------------------------------------------------

_ENDPOINT_ID = {"name": "endpoint_id", "in": "path", "required": True, "schema": {"type": "string"}}
_DELIVERY_ID = {"name": "delivery_id", "in": "path", "required": True, "schema": {"type": "string"}}
_EVENT_TYPES = {
    "type": "array",
    "items": {"type": "string"},
    "minItems": 1,
    "maxItems": 50,
    "description": "event types, or a prefix ending in * ('*' = all, 'Invoice*')",
    "example": ["InvoicePaid", "Settlement*"],
}
_WEBHOOK_ENDPOINT_FIELDS = {
    "url": {"type": "string", "maxLength": 2048, "description": "https in production"},
    "event_types": _EVENT_TYPES,
    "description": {"type": ["string", "null"], "maxLength": 500},
    "enabled": {"type": "boolean"},
}
_DELIVERY_PROPERTIES = {
    "id": {"type": "string"},
    "object": {"const": "webhook_delivery"},
    "endpoint_id": {"type": "string"},
    "event_id": {"type": "string", "format": "uuid"},
    "event_type": {"type": "string"},
    "aggregate_id": {"type": "string"},
    "origin": {"enum": ["event", "redelivery", "replay", "test"]},
    "redelivery_of": {"type": ["string", "null"]},
    "status": {"enum": ["pending", "succeeded", "failed"]},
    "attempt_count": {"type": "integer"},
    "next_attempt_at": _TIME,
    "last_error": {"type": ["string", "null"]},
    "created_at": _TIME,
    "completed_at": _TIME,
}
SCHEMAS.update(
    {
        "WebhookEndpointInput": {
            "type": "object",
            "properties": _WEBHOOK_ENDPOINT_FIELDS,
            "additionalProperties": False,
        },
        "WebhookEndpoint": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "example": "we_3f2a9c1e7b6d4a508e1f2c3d"},
                "object": {"const": "webhook_endpoint"},
                **_WEBHOOK_ENDPOINT_FIELDS,
                "disabled_reason": {"enum": ["merchant", "failing", None]},
                "disabled_at": _TIME,
                "failing_since": _TIME,
                "previous_secret_expires_at": _TIME,
                "created_at": _TIME,
                "updated_at": _TIME,
                "secret": {
                    "type": "string",
                    "description": "whsec_…, only in the answer to create and rotate-secret",
                },
            },
        },
        "WebhookDelivery": {"type": "object", "properties": _DELIVERY_PROPERTIES},
        "WebhookReplay": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "example": "whr_0123456789abcdef01234567"},
                "object": {"const": "webhook_replay"},
                "endpoint_id": {"type": "string"},
                "from": _TIME,
                "to": _TIME,
                "deliveries": {"type": "integer", "description": "what the range holds"},
                "queued": {"type": "integer", "description": "queued so far"},
                "status": {"enum": ["queued", "done", "cancelled", "failed"]},
                "created_at": _TIME,
                "completed_at": _TIME,
            },
        },
        "WebhookDeliveryDetail": {
            "type": "object",
            "properties": {
                **_DELIVERY_PROPERTIES,
                "event": {"type": "object", "description": "the domain event as published"},
                "attempts": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "attempt": {"type": "integer"},
                            "started_at": _TIME,
                            "latency_ms": {"type": "integer"},
                            "status_code": {"type": ["integer", "null"]},
                            "error": {"type": ["string", "null"]},
                            "response_excerpt": {"type": ["string", "null"]},
                        },
                    },
                },
            },
        },
    }
)


def _webhook_operation(
    summary: str,
    *,
    parameters: list[dict[str, Any]],
    success: tuple[str, dict[str, Any], str],
    errors: tuple[int, ...],
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    status, schema, description = success
    # A 204 has no body: documenting a JSON one would promise what never comes.
    answer = {"description": description} if status == "204" else _json(schema, description)
    operation: dict[str, Any] = {
        "summary": summary,
        "security": _MERCHANT,
        "parameters": parameters,
        "responses": {status: answer, **_errors(*errors)},
    }
    if body is not None:
        operation["requestBody"] = {"content": {"application/json": {"schema": body}}}
    return operation


_NO_CONTENT: tuple[str, dict[str, Any], str] = ("204", {}, "deleted")


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _delivery_log(
    summary: str, path_parameter: dict[str, Any], *, errors: tuple[int, ...]
) -> dict[str, Any]:
    """One page of a webhook delivery log (an endpoint's, or an invoice's)."""
    return _webhook_operation(
        summary,
        parameters=[
            path_parameter,
            _query("status", {"enum": ["pending", "succeeded", "failed"]}, "only these"),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "per page"),
            _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
        ],
        success=(
            "200",
            {
                "type": "object",
                "properties": {
                    "data": {"items": _ref("WebhookDelivery")},
                    "has_more": {"type": "boolean"},
                    "next_cursor": {"type": ["string", "null"]},
                },
            },
            "one page of deliveries",
        ),
        errors=errors,
    )


PATHS.update(
    {
        "/api/v1/reports/summary": {
            "get": {
                "summary": "Your volumes, fees, invoices by status, conversion and time to paid",
                "security": _MERCHANT,
                "responses": {"200": _json(_ref("ReportSummary"), "the summary")},
            }
        },
        "/api/v1/reports/daily": {
            "get": {
                "summary": "Your figures per UTC day (gross, fees, net, settlements, invoices)",
                "security": _MERCHANT,
                "parameters": _DAY_RANGE,
                "responses": {"200": _json(_ref("DailyReport"), "one entry per day")},
            }
        },
        "/api/v1/balance": {
            "get": {
                "summary": "Your balance: available, and in flight on open invoices",
                "security": _MERCHANT,
                "responses": {"200": _json(_ref("Balance"), "the balance")},
            }
        },
        "/api/v1/admin/reports/revenue": {
            "get": {
                "summary": "The platform's settlements and fees per UTC day (admins only)",
                "security": [{"accessToken": []}],
                "x-required-role": "admin",
                "parameters": _DAY_RANGE,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "total": {"type": "object"},
                                "data": {"type": "array", "items": {"type": "object"}},
                            },
                        },
                        "one entry per day, and the total",
                    )
                },
            }
        },
        "/api/v1/exports/settlements.csv": {
            "get": {
                "summary": "Your settlements created in a range of UTC days, as CSV",
                "description": "RFC 4180 with a header row, UTF-8, streamed. Columns: "
                + ", ".join(_SETTLEMENT_CSV)
                + ". Amounts are USDT decimal strings; lists are space-separated; a cell a "
                "spreadsheet would run as a formula starts with '.",
                "security": _MERCHANT,
                "parameters": _DAY_RANGE,
                "responses": {"200": _csv("the settlements, oldest first")},
            }
        },
        "/api/v1/exports/invoices.csv": {
            "get": {
                "summary": "Your invoices created in a range of UTC days, as CSV",
                "description": "RFC 4180 with a header row, UTF-8, streamed. Columns: "
                + ", ".join(_INVOICE_CSV)
                + ".",
                "security": _MERCHANT,
                "parameters": _DAY_RANGE,
                "responses": {"200": _csv("the invoices, oldest first")},
            }
        },
    }
)
PATHS.update(
    {
        "/api/v1/webhook-endpoints": {
            "post": _webhook_operation(
                "Register a webhook endpoint (its signing secret is shown once, here)",
                parameters=[],
                body=_ref("WebhookEndpointInput"),
                success=("201", _ref("WebhookEndpoint"), "created, with secret"),
                errors=(400, 401, 422),
            ),
            "get": _webhook_operation(
                "Your webhook endpoints",
                parameters=[],
                success=(
                    "200",
                    {"type": "object", "properties": {"data": {"items": _ref("WebhookEndpoint")}}},
                    "endpoints",
                ),
                errors=(401,),
            ),
        },
        "/api/v1/webhook-endpoints/{endpoint_id}": {
            "get": _webhook_operation(
                "One webhook endpoint",
                parameters=[_ENDPOINT_ID],
                success=("200", _ref("WebhookEndpoint"), "the endpoint"),
                errors=(401, 404),
            ),
            "patch": _webhook_operation(
                "Change url, event_types, description or enabled (enabling clears the failures)",
                parameters=[_ENDPOINT_ID],
                body=_ref("WebhookEndpointInput"),
                success=("200", _ref("WebhookEndpoint"), "the changed endpoint"),
                errors=(400, 401, 404),
            ),
            "delete": _webhook_operation(
                "Delete an endpoint: nothing more is sent; its delivery log stays readable",
                parameters=[_ENDPOINT_ID],
                success=_NO_CONTENT,
                errors=(401, 404),
            ),
        },
        "/api/v1/webhook-endpoints/{endpoint_id}/rotate-secret": {
            "post": _webhook_operation(
                "A new signing secret; the old one also signs during the grace period",
                parameters=[_ENDPOINT_ID],
                body={
                    "type": "object",
                    "properties": {
                        "grace_period_seconds": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": 604800,
                            "default": 86400,
                        }
                    },
                },
                success=("200", _ref("WebhookEndpoint"), "the endpoint with its new secret"),
                errors=(400, 401, 404),
            ),
        },
        "/api/v1/webhook-endpoints/{endpoint_id}/test": {
            "post": _webhook_operation(
                "Send a WebhookTest event to this endpoint",
                parameters=[_ENDPOINT_ID],
                success=("202", {"type": "object"}, "queued: delivery_id, event_id"),
                errors=(401, 404, 422, 429),
            ),
        },
        "/api/v1/webhook-endpoints/{endpoint_id}/deliveries": {
            "get": _delivery_log(
                "The endpoint's delivery log, newest first", _ENDPOINT_ID, errors=(400, 401, 404)
            ),
        },
        "/api/v1/invoices/{invoice_id}/webhook-deliveries": {
            "get": _delivery_log(
                "The deliveries of one invoice's events to any of your endpoints, newest first",
                {
                    "name": "invoice_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                },
                errors=(400, 401),
            ),
        },
        "/api/v1/webhook-endpoints/{endpoint_id}/replay": {
            "post": _webhook_operation(
                "Deliver again every selected event of [from, to), in order",
                parameters=[_ENDPOINT_ID],
                body={
                    "type": "object",
                    "required": ["from", "to"],
                    "properties": {"from": _INSTANT, "to": _INSTANT},
                },
                success=(
                    "202",
                    _ref("WebhookReplay"),
                    "accepted: queued in the background (GET /api/v1/webhook-replays/{id})",
                ),
                errors=(400, 401, 404, 422, 429),
            ),
        },
        "/api/v1/webhook-replays/{replay_id}": {
            "get": _webhook_operation(
                "A replay's progress",
                parameters=[
                    {
                        "name": "replay_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                success=("200", _ref("WebhookReplay"), "the replay"),
                errors=(401, 404),
            ),
        },
        "/api/v1/webhook-deliveries/{delivery_id}": {
            "get": _webhook_operation(
                "One delivery with its event and every attempt",
                parameters=[_DELIVERY_ID],
                success=("200", _ref("WebhookDeliveryDetail"), "the delivery"),
                errors=(401, 404),
            ),
        },
        "/api/v1/webhook-deliveries/{delivery_id}/redeliver": {
            "post": _webhook_operation(
                "Send the delivery's event again, as a new delivery",
                parameters=[_DELIVERY_ID],
                success=("202", {"type": "object"}, "queued: delivery_id, redelivery_of"),
                errors=(401, 404, 422, 429),
            ),
        },
    }
)


# What any operation may answer beyond its own list, because of what every request goes through:
# the input guard (web/input.py) answers 400 for a bad path id or query parameter; a body is
# read no further than 64 KiB (413); an API key is checked first (401).
# --- access (docs/security.md) -------------------------------------------------------------------

_KEY_ID = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}
_USER_ID = {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}
_MERCHANT_ID = {
    "name": "merchant_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}
_SCOPE_NAMES = [scope.value for scope in Scope]
_ROLE_NAMES = [role.value for role in MERCHANT_ROLES]
_USER = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "user"},
        "email": {"type": "string"},
        "merchant_id": {"type": ["string", "null"]},
        "role": {"enum": [role.value for role in Role]},
        "status": {"enum": ["invited", "active", "disabled"]},
        "created_at": _TIME,
        "disabled_at": _TIME,
        "invitation": {"type": "string", "description": "inv_…, only when invited: pass it on"},
    },
}
SCHEMAS.update(
    {
        "ApiKey": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "api_key"},
                "name": {"type": "string"},
                "scopes": {"type": "array", "items": {"enum": _SCOPE_NAMES}},
                "created_at": _TIME,
                "expires_at": _TIME,
                "revoked_at": _TIME,
                "rolled_at": _TIME,
                "previous_secret_valid_until": _TIME,
                "created_by": {"type": ["string", "null"]},
                "secret": {
                    "type": "string",
                    "description": "ck_…, only in the answer to create and roll",
                },
            },
        },
        "User": _USER,
        "Session": {
            "type": "object",
            "properties": {
                "object": {"const": "session"},
                "token_type": {"const": "Bearer"},
                "access_token": {"type": "string", "description": "a JWT, 15 minutes"},
                "expires_in": {"type": "integer"},
                "refresh_token": {"type": "string", "description": "rt_…, rotates on use"},
                "user": _USER,
            },
        },
        "Principal": {
            "type": "object",
            "properties": {
                "object": {"const": "principal"},
                "type": {"enum": ["api_key", "user"]},
                "id": {"type": "string"},
                "merchant_id": {"type": ["string", "null"]},
                "role": {"type": ["string", "null"]},
                "scopes": {"type": "array", "items": {"enum": _SCOPE_NAMES}},
                "merchant_status": {"enum": ["active", "suspended"]},
            },
        },
        "Merchant": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "merchant"},
                "name": {"type": "string"},
                "fee_percentage": {"type": "string"},
                "confirmations_override": {"type": ["integer", "null"]},
                "underpaid_tolerance": {"type": ["string", "null"], "example": "99.5"},
                "status": {"enum": ["active", "suspended"]},
                "suspended_at": _TIME,
                "created_at": _TIME,
            },
        },
        "AuditEntry": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "object": {"const": "audit_entry"},
                "occurred_at": _TIME,
                "merchant_id": {"type": ["string", "null"]},
                "actor": {"type": "object"},
                "action": {"type": "string", "example": "POST /api/v1/api-keys"},
                "target_id": {"type": ["string", "null"]},
                "request_id": {"type": ["string", "null"]},
                "client_address": {"type": ["string", "null"]},
                "result": {"type": "string", "example": "201"},
                "details": {"type": "object"},
            },
        },
    }
)


def _list_of(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "data": {"type": "array", "items": _ref(name)},
            "has_more": {"type": "boolean"},
            "next_cursor": {"type": ["string", "null"]},
        },
    }


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    return {"required": bool(required), "content": {"application/json": {"schema": schema}}}


def _operation(
    summary: str,
    success: tuple[str, dict[str, Any] | None, str],
    errors: tuple[int, ...],
    *,
    auth: str | None = "merchant",
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    status, schema, description = success
    answer = {"description": description} if schema is None else _json(schema, description)
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": parameters or [],
        "responses": {status: answer, **_errors(*errors)},
    }
    if auth == "merchant":
        operation["security"] = _MERCHANT
    elif auth == "admin":
        operation["security"] = [{"accessToken": []}]
        operation["x-required-role"] = "admin"
    if body is not None:
        operation["requestBody"] = body
    return operation


_EMAIL = {"type": "string", "maxLength": 254, "example": "ana@example.com"}
_PASSWORD = {"type": "string", "minLength": 12, "maxLength": 128}
_LIMIT = _query(
    "limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "per page"
)
PATHS.update(
    {
        "/api/v1/signup": {
            "get": _operation(
                "Whether new merchants may sign up here: open, invite or closed",
                (
                    "200",
                    {
                        "type": "object",
                        "properties": {"mode": {"enum": ["open", "invite", "closed"]}},
                    },
                    "the sign-up mode",
                ),
                (),
                auth=None,
            ),
            "post": _operation(
                "Sign up a new merchant and its owner; a verification link is emailed",
                (
                    "201",
                    {
                        "type": "object",
                        "properties": {
                            "merchant_id": {"type": "string"},
                            "user_id": {"type": "string"},
                            "email": _EMAIL,
                            "email_verified": {"type": "boolean"},
                            "verification_email": {"enum": ["sent", "failed"]},
                        },
                    },
                    "signed up; follow the emailed link before creating API keys",
                ),
                (400, 403, 409, 429),
                auth=None,
                body=_body(
                    {
                        "business_name": {"type": "string", "maxLength": 200},
                        "email": _EMAIL,
                        "password": {"type": "string"},
                        "invitation": {
                            "type": "string",
                            "description": "the operator's code, when sign-up is by invite",
                        },
                    },
                    ["business_name", "email", "password"],
                ),
            ),
        },
        "/api/v1/signup/verify": {
            "post": _operation(
                "Confirm an email address with the token of the emailed link",
                (
                    "200",
                    {
                        "type": "object",
                        "properties": {
                            "user_id": {"type": "string"},
                            "email": _EMAIL,
                            "email_verified_at": {"type": "string", "format": "date-time"},
                        },
                    },
                    "verified",
                ),
                (400,),
                auth=None,
                body=_body({"token": {"type": "string"}}, ["token"]),
            )
        },
        "/api/v1/signup/resend": {
            "post": _operation(
                "A new verification link, if that owner is not verified (the answer never says)",
                ("202", {"type": "object"}, "accepted"),
                (400, 429),
                auth=None,
                body=_body({"email": _EMAIL}, ["email"]),
            )
        },
        "/api/v1/auth/login": {
            "post": _operation(
                "Sign in: a 15-minute access token and a refresh token",
                ("200", _ref("Session"), "signed in"),
                (401, 429),
                auth=None,
                body=_body(
                    {"email": _EMAIL, "password": {"type": "string"}}, ["email", "password"]
                ),
            )
        },
        "/api/v1/auth/refresh": {
            "post": _operation(
                "A new access token; the refresh token is replaced (use the new one)",
                ("200", _ref("Session"), "refreshed"),
                (401,),
                auth=None,
                body=_body({"refresh_token": {"type": "string"}}, ["refresh_token"]),
            )
        },
        "/api/v1/auth/logout": {
            "post": _operation(
                "End the session: its refresh tokens are revoked",
                ("204", None, "signed out"),
                (401,),
                auth=None,
                body=_body({"refresh_token": {"type": "string"}}, ["refresh_token"]),
            )
        },
        "/api/v1/auth/accept-invitation": {
            "post": _operation(
                "Choose a password with an invitation, and sign in",
                ("200", _ref("Session"), "signed in"),
                (401,),
                auth=None,
                body=_body(
                    {"invitation": {"type": "string"}, "password": _PASSWORD},
                    ["invitation", "password"],
                ),
            )
        },
        "/api/v1/auth/me": {
            "get": _operation(
                "Who the credential is: its merchant, role and scopes",
                ("200", _ref("Principal"), "the caller"),
                (401,),
            )
        },
        "/api/v1/api-keys": {
            "post": _operation(
                "Create an API key (its secret is shown once, here)",
                ("201", _ref("ApiKey"), "created, with secret"),
                (401, 403, 422),
                body=_body(
                    {
                        "name": {"type": "string", "minLength": 1, "maxLength": 100},
                        "scopes": {
                            "type": "array",
                            "items": {"enum": _SCOPE_NAMES},
                            "minItems": 1,
                            "maxItems": 64,
                        },
                        "expires_at": {"type": ["string", "null"], "format": "date-time"},
                    },
                    ["name", "scopes"],
                ),
            ),
            "get": _operation(
                "Your API keys (never their secrets)",
                ("200", _list_of("ApiKey"), "keys"),
                (401, 403),
            ),
        },
        "/api/v1/api-keys/{key_id}": {
            "delete": _operation(
                "Revoke a key: refused on every worker at once",
                ("200", _ref("ApiKey"), "revoked"),
                (401, 403, 404),
                parameters=[_KEY_ID],
            )
        },
        "/api/v1/api-keys/{key_id}/roll": {
            "post": _operation(
                "A new secret for the key; the old one works for the grace period (24 h)",
                ("200", _ref("ApiKey"), "rolled, with the new secret"),
                (401, 403, 404),
                parameters=[_KEY_ID],
                body=_body(
                    {
                        "grace_period_seconds": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": 2592000,
                            "default": 86400,
                        }
                    },
                    [],
                ),
            )
        },
        "/api/v1/users": {
            "get": _operation(
                "The merchant's team", ("200", _list_of("User"), "users"), (401, 403)
            ),
            "post": _operation(
                "Invite a user with a role (the invitation is shown once, here)",
                ("201", _ref("User"), "invited"),
                (401, 403, 409),
                body=_body({"email": _EMAIL, "role": {"enum": _ROLE_NAMES}}, ["email", "role"]),
            ),
        },
        "/api/v1/users/{user_id}": {
            "patch": _operation(
                "Change a user's role (a merchant keeps one owner)",
                ("200", _ref("User"), "changed"),
                (401, 403, 404, 422),
                parameters=[_USER_ID],
                body=_body({"role": {"enum": _ROLE_NAMES}}, ["role"]),
            ),
            "delete": _operation(
                "Remove a user: their sessions end",
                ("200", _ref("User"), "removed"),
                (401, 403, 404, 422),
                parameters=[_USER_ID],
            ),
        },
        "/api/v1/audit-log": {
            "get": _operation(
                "The audit log, oldest first (owners: theirs; the admin: all, or ?merchant_id=)",
                ("200", _list_of("AuditEntry"), "entries"),
                (401, 403),
                parameters=[
                    _LIMIT,
                    _query(
                        "starting_after",
                        {"type": "integer", "minimum": 0},
                        "next_cursor of the previous page",
                    ),
                    _query("merchant_id", {"type": "string"}, "the admin only: one merchant's"),
                ],
            )
        },
        "/api/v1/admin/merchants": {
            "get": _operation(
                "Every merchant, by id",
                ("200", _list_of("Merchant"), "merchants"),
                (401, 403),
                auth="admin",
                parameters=[
                    _LIMIT,
                    _query("starting_after", {"type": "string"}, "next_cursor of the last page"),
                ],
            )
        },
        "/api/v1/admin/merchants/{merchant_id}": {
            "get": _operation(
                "One merchant",
                ("200", _ref("Merchant"), "the merchant"),
                (401, 403, 404),
                auth="admin",
                parameters=[_MERCHANT_ID],
            ),
            "patch": _operation(
                "Set the fee, the confirmation override and the underpayment tolerance (from the"
                " next invoice on)",
                ("200", _ref("Merchant"), "changed"),
                (401, 403, 404),
                auth="admin",
                parameters=[_MERCHANT_ID],
                body=_body(
                    {
                        "fee_percentage": {"type": "string", "example": "1.5"},
                        "confirmations_override": {
                            "type": ["integer", "null"],
                            "minimum": 1,
                            "maximum": 100,
                        },
                        "underpaid_tolerance": {
                            "type": ["string", "null"],
                            "example": "99.5",
                            "description": "accept at expiry from this percent; null: never",
                        },
                    },
                    [],
                ),
            ),
        },
        "/api/v1/admin/merchants/{merchant_id}/suspend": {
            "post": _operation(
                "Suspend: keys and users refused (403); invoices still watched and settled",
                ("200", _ref("Merchant"), "suspended"),
                (401, 403, 404),
                auth="admin",
                parameters=[_MERCHANT_ID],
            )
        },
        "/api/v1/admin/merchants/{merchant_id}/unsuspend": {
            "post": _operation(
                "Lift a suspension",
                ("200", _ref("Merchant"), "active again"),
                (401, 403, 404),
                auth="admin",
                parameters=[_MERCHANT_ID],
            )
        },
    }
)

_TRANSFER_PROPERTIES = {
    "id": {"type": "string", "example": "po_3f2a9c0b1d4e5f60718293a4"},
    "amount": _AMOUNT,
    "currency": {"const": "USDT"},
    "address": {"type": "string", "description": "the destination (a Tron address)"},
    "failure_reason": {"type": ["string", "null"]},
    "tx_hash": {"type": ["string", "null"], "description": "once the node accepted it"},
    "block_number": {"type": ["integer", "null"]},
    "network_fee": {
        "type": "object",
        "properties": {
            "payer": {"enum": ["platform", "merchant"]},
            "charged": {**_AMOUNT, "description": "USDT charged to you for the network fee"},
            "burned_trx": {"type": ["string", "null"], "description": "TRX the transfer burned"},
        },
    },
    "created_at": _TIME,
    "broadcast_at": _TIME,
    "finished_at": _TIME,
}
SCHEMAS.update(
    {
        "Refund": {
            "type": "object",
            "properties": {
                **_TRANSFER_PROPERTIES,
                "object": {"const": "refund"},
                "invoice_id": {"type": "string"},
                "status": {"enum": ["pending", "broadcast", "confirmed", "failed"]},
            },
        },
        "PayoutSchedule": {
            "type": "object",
            "properties": {
                "object": {"const": "payout_schedule"},
                "frequency": {"enum": ["daily", "weekly"]},
                "weekday": {"type": ["string", "null"]},
                "hour": {"type": "integer"},
                "address": {"type": "string"},
                "minimum_amount": _AMOUNT,
                "keep_amount": _AMOUNT,
                "currency": {"const": "USDT"},
            },
        },
        "Payout": {
            "type": "object",
            "properties": {
                **_TRANSFER_PROPERTIES,
                "object": {"const": "payout"},
                "status": {
                    "enum": [
                        "requested",
                        "approved",
                        "signing",
                        "broadcast",
                        "confirmed",
                        "failed",
                        "cancelled",
                    ]
                },
                "approval": {"enum": ["automatic", "admin"]},
                "approved_at": _TIME,
            },
        },
    }
)
PATHS.update(
    {
        "/api/v1/invoices/{invoice_id}/resolve": {
            "post": _operation(
                "Resolve an underpaid invoice: accept what was received, refund it, or extend "
                "the deadline (refund also needs refunds:write)",
                ("200", _ref("Invoice"), "the invoice after the resolution"),
                (401, 403, 404, 409, 422),
                parameters=[
                    _INVOICE_ID,
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 128},
                    },
                ],
                body=_body(
                    {
                        "action": {"enum": ["accept", "refund", "extend"]},
                        "expires_in": {
                            "type": "integer",
                            "description": "extend: seconds from now until the new deadline",
                        },
                        "address": {
                            "type": "string",
                            "description": "refund: to whom (default: the address that paid)",
                        },
                    },
                    ["action"],
                ),
            )
        },
    }
)
_IDEMPOTENCY_REQUIRED = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "maxLength": 128},
    "description": "a retry with the same key answers the same transfer and never sends twice",
}
_TRON_ADDRESS = {"type": "string", "pattern": "^T[1-9A-HJ-NP-Za-km-z]{33}$"}
PATHS.update(
    {
        "/api/v1/invoices/{invoice_id}/refunds": {
            "post": _operation(
                "Refund a settled invoice from your balance (default: the overpaid amount, to "
                "whoever paid)",
                ("201", _ref("Refund"), "recorded and debited; it is sent next"),
                (401, 403, 404, 409, 422),
                parameters=[_INVOICE_ID, _IDEMPOTENCY_REQUIRED],
                body=_body({"amount": _AMOUNT, "address": _TRON_ADDRESS}, []),
            ),
            "get": _operation(
                "The invoice's refunds",
                ("200", _list_of("Refund"), "refunds, newest first"),
                (401, 403),
                parameters=[_INVOICE_ID],
            ),
        },
        "/api/v1/refunds/{refund_id}": {
            "get": _operation(
                "One refund",
                ("200", _ref("Refund"), "the refund"),
                (401, 403, 404),
                parameters=[_path_parameter("refund_id")],
            )
        },
        "/api/v1/payouts": {
            "post": _operation(
                "Pay out your balance to an address (approved automatically below your "
                "threshold, else by the platform)",
                ("201", _ref("Payout"), "recorded and debited"),
                (401, 403, 409, 422),
                parameters=[_IDEMPOTENCY_REQUIRED],
                body=_body({"amount": _AMOUNT, "address": _TRON_ADDRESS}, ["amount", "address"]),
            ),
            "get": _operation(
                "Your payouts, newest first (keyset cursor)",
                ("200", _list_of("Payout"), "payouts"),
                (401, 403),
                parameters=[
                    _LIMIT,
                    _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                ],
            ),
        },
        "/api/v1/payouts/{payout_id}": {
            "get": _operation(
                "One payout",
                ("200", _ref("Payout"), "the payout"),
                (401, 403, 404),
                parameters=[_path_parameter("payout_id")],
            )
        },
        "/api/v1/payouts/{payout_id}/cancel": {
            "post": _operation(
                "Cancel a payout not yet signed; the amount returns to your balance",
                ("200", _ref("Payout"), "cancelled"),
                (401, 403, 404, 422),
                parameters=[_path_parameter("payout_id")],
            )
        },
        "/api/v1/payout-schedule": {
            "get": _operation(
                "Your payout schedule",
                ("200", _ref("PayoutSchedule"), "the schedule"),
                (401, 403, 404),
            ),
            "put": _operation(
                "Pay out your balance daily or weekly to a saved address (replaces the schedule)",
                ("200", _ref("PayoutSchedule"), "the schedule"),
                (401, 403, 422),
                body=_body(
                    {
                        "frequency": {"enum": ["daily", "weekly"]},
                        "weekday": {
                            "enum": [
                                "monday",
                                "tuesday",
                                "wednesday",
                                "thursday",
                                "friday",
                                "saturday",
                                "sunday",
                            ],
                            "description": "weekly only",
                        },
                        "hour": {"type": "integer", "minimum": 0, "maximum": 23},
                        "address": _TRON_ADDRESS,
                        "minimum_amount": {**_AMOUNT, "description": "less waits (default any)"},
                        "keep_amount": {**_AMOUNT, "description": "left in the balance"},
                    },
                    ["frequency", "address"],
                ),
            ),
            "delete": _operation(
                "Stop scheduled payouts",
                ("200", None, "deleted"),
                (401, 403, 404),
            ),
        },
        "/api/v1/admin/payouts": {
            "get": _operation(
                "Payouts waiting for an admin's approval, oldest first",
                ("200", _list_of("Payout"), "payouts"),
                (401, 403),
                auth="admin",
                parameters=[
                    _LIMIT,
                    _query("status", {"const": "requested"}, "only requested (the default)"),
                ],
            )
        },
        "/api/v1/admin/payouts/{payout_id}/approve": {
            "post": _operation(
                "Approve a payout above its merchant's threshold",
                ("200", _ref("Payout"), "approved; it is sent with the next batch"),
                (401, 403, 404, 422),
                auth="admin",
                parameters=[_path_parameter("payout_id")],
            )
        },
    }
)

# --- notifications (web/notifications_api.py, docs/notifications.md) ------------------------------

_NOTICES: Final = [str(notice) for notice in Notice]
_NOTICE_LIST = {"type": "array", "items": {"enum": _NOTICES}, "maxItems": len(_NOTICES)}
_SMS_NUMBER = {
    "type": ["string", "null"],
    "pattern": r"^\+[1-9][0-9]{6,14}$",
    "example": "+4915112345678",
    "description": "E.164; required while sms lists a notice",
}

SCHEMAS.update(
    {
        "NotificationPreferences": {
            "type": "object",
            "properties": {
                "object": {"const": "notification_preferences"},
                **{channel.value: _NOTICE_LIST for channel in Channel},
                "sms_number": _SMS_NUMBER,
                "notices": {**_NOTICE_LIST, "description": "every notice there is"},
            },
        }
    }
)

# A signed-in user's own (an access token; an API key gets 403).
_USER_ONLY: Final[list[dict[str, list[str]]]] = [{"accessToken": []}]

PATHS.update(
    {
        "/api/v1/notification-preferences": {
            "get": {
                **_operation(
                    "Your notification preferences (the defaults until you change them)",
                    ("200", _ref("NotificationPreferences"), "the preferences"),
                    (401, 403),
                    auth=None,
                ),
                "security": _USER_ONLY,
            },
            "patch": {
                **_operation(
                    "Choose the notices each channel brings you; channels not named stay",
                    ("200", _ref("NotificationPreferences"), "the preferences now"),
                    (401, 403),
                    auth=None,
                    body=_body(
                        {
                            **{channel.value: _NOTICE_LIST for channel in Channel},
                            "sms_number": _SMS_NUMBER,
                        },
                        [],
                    ),
                ),
                "security": _USER_ONLY,
            },
        },
        "/api/v1/notification-preferences/telegram-link": {
            "post": {
                **_operation(
                    "A one-time link (30 minutes) that links a Telegram chat to you",
                    (
                        "201",
                        {
                            "type": "object",
                            "properties": {
                                "token": {"type": "string", "maxLength": 64},
                                "deep_link": {"type": ["string", "null"], "format": "uri"},
                                "command": {"type": "string", "example": "/start AbC…"},
                                "expires_at": {"type": "string", "format": "date-time"},
                            },
                            "required": ["token", "deep_link", "command", "expires_at"],
                        },
                        "open deep_link in Telegram, or send command to the bot",
                    ),
                    (401, 403),
                    auth=None,
                ),
                "security": _USER_ONLY,
            },
        },
        "/api/v1/notification-preferences/telegram": {
            "get": {
                **_operation(
                    "The Telegram chat linked to you",
                    (
                        "200",
                        {
                            "type": "object",
                            "properties": {
                                "chat_id": {"type": "integer"},
                                "username": {"type": ["string", "null"]},
                                "linked_at": {"type": "string", "format": "date-time"},
                            },
                            "required": ["chat_id", "username", "linked_at"],
                        },
                        "the chat",
                    ),
                    (401, 403, 404),
                    auth=None,
                ),
                "security": _USER_ONLY,
            },
            "delete": {
                **_operation(
                    "Unlink your Telegram chat: nothing more is sent there",
                    ("204", None, "unlinked"),
                    (401, 403, 404),
                    auth=None,
                ),
                "security": _USER_ONLY,
            },
        },
        "/api/v1/notification-preferences/deliveries": {
            "get": {
                **_operation(
                    "Your latest notices and what became of each (newest first)",
                    (
                        "200",
                        {
                            "type": "object",
                            "properties": {
                                "data": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "notice_id": {"type": "string", "format": "uuid"},
                                            "channel": {"enum": [c.value for c in Channel]},
                                            "notice": {"type": "string"},
                                            "subject_id": {"type": "string"},
                                            "status": {
                                                "enum": [
                                                    "pending",
                                                    "sent",
                                                    "rejected",
                                                    "failed",
                                                    "skipped",
                                                ]
                                            },
                                            "attempts": {"type": "integer"},
                                            "last_error": {"type": ["string", "null"]},
                                            "created_at": {"type": "string"},
                                            "finished_at": {"type": ["string", "null"]},
                                        },
                                    },
                                }
                            },
                            "required": ["data"],
                        },
                        "the notices",
                    ),
                    (400, 401, 403),
                    auth=None,
                    parameters=[_LIMIT],
                ),
                "security": _USER_ONLY,
            },
        },
    }
)

# The scope each merchant operation needs (web/*.py checks it; a test holds the two together).
OPERATION_SCOPES: dict[tuple[str, str], Scope] = {
    ("post", "/api/v1/invoices"): Scope.INVOICES_WRITE,
    ("get", "/api/v1/invoices"): Scope.INVOICES_READ,
    ("get", "/api/v1/invoices/{invoice_id}"): Scope.INVOICES_READ,
    ("post", "/api/v1/invoices/{invoice_id}/cancel"): Scope.INVOICES_WRITE,
    ("post", "/api/v1/invoices/{invoice_id}/resolve"): Scope.INVOICES_WRITE,
    ("get", "/api/v1/invoices/{invoice_id}/settlement"): Scope.SETTLEMENTS_READ,
    ("get", "/api/v1/settlements"): Scope.SETTLEMENTS_READ,
    ("get", "/api/v1/settlements/{settlement_id}"): Scope.SETTLEMENTS_READ,
    ("post", "/api/v1/webhook-endpoints"): Scope.WEBHOOKS_WRITE,
    ("get", "/api/v1/webhook-endpoints"): Scope.WEBHOOKS_READ,
    ("get", "/api/v1/webhook-endpoints/{endpoint_id}"): Scope.WEBHOOKS_READ,
    ("patch", "/api/v1/webhook-endpoints/{endpoint_id}"): Scope.WEBHOOKS_WRITE,
    ("delete", "/api/v1/webhook-endpoints/{endpoint_id}"): Scope.WEBHOOKS_WRITE,
    ("post", "/api/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): Scope.WEBHOOKS_WRITE,
    ("post", "/api/v1/webhook-endpoints/{endpoint_id}/test"): Scope.WEBHOOKS_WRITE,
    ("get", "/api/v1/webhook-endpoints/{endpoint_id}/deliveries"): Scope.WEBHOOKS_READ,
    ("get", "/api/v1/invoices/{invoice_id}/webhook-deliveries"): Scope.WEBHOOKS_READ,
    ("post", "/api/v1/webhook-endpoints/{endpoint_id}/replay"): Scope.WEBHOOKS_WRITE,
    ("get", "/api/v1/webhook-deliveries/{delivery_id}"): Scope.WEBHOOKS_READ,
    ("get", "/api/v1/webhook-replays/{replay_id}"): Scope.WEBHOOKS_READ,
    ("post", "/api/v1/webhook-deliveries/{delivery_id}/redeliver"): Scope.WEBHOOKS_WRITE,
    ("post", "/api/v1/api-keys"): Scope.KEYS_WRITE,
    ("get", "/api/v1/api-keys"): Scope.KEYS_WRITE,
    ("delete", "/api/v1/api-keys/{key_id}"): Scope.KEYS_WRITE,
    ("post", "/api/v1/api-keys/{key_id}/roll"): Scope.KEYS_WRITE,
    ("get", "/api/v1/users"): Scope.USERS_WRITE,
    ("post", "/api/v1/users"): Scope.USERS_WRITE,
    ("patch", "/api/v1/users/{user_id}"): Scope.USERS_WRITE,
    ("delete", "/api/v1/users/{user_id}"): Scope.USERS_WRITE,
    ("get", "/api/v1/audit-log"): Scope.AUDIT_READ,
    ("get", "/api/v1/reports/summary"): Scope.REPORTS_READ,
    ("get", "/api/v1/reports/daily"): Scope.REPORTS_READ,
    ("get", "/api/v1/balance"): Scope.REPORTS_READ,
    ("get", "/api/v1/exports/settlements.csv"): Scope.REPORTS_READ,
    ("get", "/api/v1/exports/invoices.csv"): Scope.REPORTS_READ,
    ("post", "/api/v1/invoices/{invoice_id}/refunds"): Scope.REFUNDS_WRITE,
    ("get", "/api/v1/invoices/{invoice_id}/refunds"): Scope.INVOICES_READ,
    ("get", "/api/v1/refunds/{refund_id}"): Scope.INVOICES_READ,
    ("post", "/api/v1/payouts"): Scope.PAYOUTS_WRITE,
    ("get", "/api/v1/payouts"): Scope.PAYOUTS_READ,
    ("get", "/api/v1/payouts/{payout_id}"): Scope.PAYOUTS_READ,
    ("post", "/api/v1/payouts/{payout_id}/cancel"): Scope.PAYOUTS_WRITE,
    ("get", "/api/v1/payout-schedule"): Scope.PAYOUTS_READ,
    ("put", "/api/v1/payout-schedule"): Scope.PAYOUTS_WRITE,
    ("delete", "/api/v1/payout-schedule"): Scope.PAYOUTS_WRITE,
}
_NOT_LIMITED = ("/healthz", "/readyz")
_CONTENT_STATUSES = {
    "400": "malformed input; error.param names the field",
    "413": "body too large",
    "401": "missing, unknown, expired or revoked credential",
    "403": "the credential lacks the scope (insufficient_scope, param names it), or the "
    "merchant is suspended (merchant_suspended)",
    "429": "a rate limit is used up (rate_limit_exceeded, param names the tier); see Retry-After",
}


def _completed(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation with its security and scope, and every status the platform's
    middlewares can answer with."""
    completed: dict[str, Any] = {}
    for path, item in paths.items():
        completed[path] = {}
        for method, original in item.items():
            operation = dict(original)
            responses = dict(operation["responses"])
            statuses = ["400"]
            if "requestBody" in operation:
                statuses.append("413")
            if operation.get("security"):
                statuses += ["401", "403"]
            if path not in _NOT_LIMITED:
                statuses.append("429")
            scope = OPERATION_SCOPES.get((method, path))
            if scope is not None:
                operation["security"] = [{"apiKey": [scope.value]}, {"accessToken": [scope.value]}]
                operation["x-required-scope"] = scope.value
            elif operation.get("security") == _MERCHANT:
                # Any valid credential (GET /api/v1/auth/me).
                operation["security"] = [{"apiKey": []}, {"accessToken": []}]
            for status in statuses:
                if status not in responses:
                    responses[status] = _json(_ERROR, _CONTENT_STATUSES[status])
            operation["responses"] = responses
            completed[path][method] = operation
    return completed


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "crypto-checkout",
            "version": "1",
            "description": "USDT (TRC-20) invoices on Tron. Amounts are decimal strings of USDT; "
            "errors are {error: {type, code, message, param}}.",
        },
        "paths": _completed(PATHS),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key, ck_…, for servers: it holds the scopes it was "
                    "given (docs/security.md)",
                },
                "accessToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A user's access token from POST /api/v1/auth/login, for "
                    "the dashboard: it holds the scopes of the user's role",
                },
            },
        },
    }


async def openapi_json(request: aioweb.Request) -> aioweb.Response:
    return aioweb.json_response(openapi_document())


def add_routes(router: aioweb.UrlDispatcher) -> None:
    router.add_get("/openapi.json", openapi_json)
