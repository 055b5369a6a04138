"""``GET /openapi.json``: every HTTP endpoint of a worker, for integrators and their tools.

Kept next to the routes it describes; a test compares its paths with the routes the aiohttp
application really serves, so an endpoint cannot be added without being described.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web as aioweb

from app.faust_app import aiohttp_application

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
        413: "body too large",
        422: "a business rule refuses it (error.message names the status and the allowed ones)",
        503: "temporarily unavailable (rebalancing, or the agent did not answer in time); retry",
    }
    return {str(status): _json(_ERROR, text[status]) for status in statuses}


_INVOICE_ID = {"name": "invoice_id", "in": "path", "required": True, "schema": {"type": "string"}}
_MERCHANT: list[dict[str, list[str]]] = [{"bearerAuth": []}]

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
        },
    },
    "Invoice": {
        "type": "object",
        "properties": {
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
            "status": {"enum": ["pending", "completed", "failed"]},
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
            "version": {"type": "integer"},
        },
    },
}

PATHS: dict[str, Any] = {
    "/api/v1/invoices": {
        "post": {
            "summary": "Create an invoice with its own deposit address",
            "security": _MERCHANT,
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "schema": {"type": "string", "maxLength": 200},
                    "description": "same key and body → the same invoice; another body → 409",
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
        }
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
            "responses": {"200": _json(_ref("Settlement"), "the settlement"), **_errors(401, 404)},
        }
    },
    "/api/v1/settlements": {
        "get": {
            "summary": "Your settlements, newest first",
            "security": _MERCHANT,
            "parameters": [
                {"name": "invoice_id", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}},
            ],
            "responses": {
                "200": _json(
                    {"type": "object", "properties": {"data": {"items": _ref("Settlement")}}},
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
            "responses": {"101": {"description": "switching protocols"}, **_errors(404)},
        }
    },
    "/api/v1/public/invoice/{invoice_id}/events": {
        "get": {
            "summary": "Server-Sent Events fallback: `event: invoice` with the view as data",
            "parameters": [_INVOICE_ID],
            "responses": {"200": {"description": "text/event-stream"}, **_errors(404)},
        }
    },
    "/pay/{invoice_id}": {
        "get": {
            "summary": "The customer's payment page (HTML)",
            "parameters": [_INVOICE_ID],
            "responses": {"200": {"description": "text/html"}, "404": {"description": "HTML"}},
        }
    },
    "/internal/v1/invoices/{invoice_id}/public-view": {
        "get": {
            "summary": "Worker to worker: the public view rebuilt from the local table only",
            "parameters": [_INVOICE_ID],
            "responses": {"200": _json(_ref("PublicInvoice"), "the view"), **_errors(404)},
        }
    },
    "/healthz": {
        "get": {"summary": "The process answers", "responses": {"200": {"description": "alive"}}}
    },
    "/readyz": {
        "get": {
            "summary": "Kafka, PostgreSQL, Redis reachable and partitions owned, each named",
            "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
        }
    },
    "/metrics": {
        "get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}
    },
    "/openapi.json": {
        "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}
    },
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "crypto-checkout",
            "version": "1",
            "description": "USDT (TRC-20) invoices on Tron. Amounts are decimal strings of USDT; "
            "errors are {error: {type, code, message, param}}.",
        },
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "ck_… API key"}
            },
        },
    }


async def openapi_json(request: aioweb.Request) -> aioweb.Response:
    return aioweb.json_response(openapi_document())


aiohttp_application().router.add_get("/openapi.json", openapi_json)
