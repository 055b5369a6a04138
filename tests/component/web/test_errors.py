"""The one error shape, and the one table that gives each kind of error its HTTP status."""

from __future__ import annotations

import psycopg2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.exceptions import ConnectionError as RedisConnectionError

from app.domain import errors
from app.domain.deposit import AddressConflict
from app.domain.webhooks import EndpointNotEnabled, ReplayTooLarge, WebhookEndpointNotFound
from app.services.errors import CommandTimeout, IdempotencyKeyReused
from web.errors import (
    HTTP_STATUS,
    ApiError,
    checkout_error_response,
    error_body,
    error_middleware,
    status_for,
)

pytestmark = pytest.mark.component


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (
            errors.AmountZero("amount must be greater than zero", param="amount"),
            400,
            {
                "type": "invalid_request_error",
                "code": "amount_zero",
                "message": "amount must be greater than zero",
                "param": "amount",
            },
        ),
        (
            errors.InvoiceNotFound("invoice inv_1 does not exist", param="invoice_id"),
            404,
            {
                "type": "not_found_error",
                "code": "invoice_not_found",
                "message": "invoice inv_1 does not exist",
                "param": "invoice_id",
            },
        ),
        (
            errors.AlreadyExists("taken"),
            409,
            {"type": "conflict_error", "code": "already_exists", "message": "taken", "param": None},
        ),
        (
            errors.InvalidTransition("invoice", "inv_1", "paid", "cancelled", []),
            422,
            {
                "type": "business_rule_error",
                "code": "invalid_transition",
                "message": "invoice inv_1 is paid and cannot become cancelled; "
                "allowed from paid: none (final status)",
                "param": "status",
            },
        ),
    ],
)
def test_domain_errors_render_the_one_error_shape(
    error: errors.CheckoutError, status: int, body: dict[str, str | None]
) -> None:
    assert status_for(error) == status
    assert error_body(error) == body


def test_the_most_specific_class_decides() -> None:
    assert status_for(errors.PaymentNotFound("no payment")) == 404  # through NotFound
    assert status_for(AddressConflict("taken")) == 409
    assert status_for(IdempotencyKeyReused("reused")) == 409
    assert status_for(errors.InvoiceNotDue("not yet")) == 422
    assert status_for(errors.InvalidFeePercentage("101")) == 400  # the root's status
    assert status_for(WebhookEndpointNotFound("no endpoint")) == 404
    assert status_for(EndpointNotEnabled("disabled")) == 422
    assert status_for(ReplayTooLarge("too many")) == 422


def test_an_unavailable_dependency_is_a_503_to_retry() -> None:
    response = checkout_error_response(CommandTimeout("no answer in time"))
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"


def test_web_errors_carry_their_own_status_code_and_headers() -> None:
    error = ApiError(401, "invalid_api_key", "not valid", headers={"WWW-Authenticate": "Bearer"})
    response = checkout_error_response(error)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert error_body(error)["type"] == "authentication_error"


def test_every_mapped_status_is_an_error_status() -> None:
    assert all(400 <= status < 600 for status in HTTP_STATUS.values())


@pytest.mark.parametrize(
    "outage",
    [
        psycopg2.OperationalError("FATAL:  the database system is shutting down"),
        psycopg2.InterfaceError("connection already closed"),
        RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
        ConnectionRefusedError(111, "Connect call failed"),
    ],
)
async def test_postgres_or_redis_unreachable_is_a_503_to_retry_not_a_500(
    outage: Exception,
) -> None:
    # Before, every request during a PostgreSQL outage was a 500 internal_error with a traceback
    # in the log (make test-faults, PostgreSQL stopped for 30 s).
    async def handler(request: web.Request) -> web.Response:
        raise outage

    async def bug(request: web.Request) -> web.Response:
        raise KeyError("status")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/api/v1/invoices", handler)
    app.router.add_post("/bug", bug)
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/api/v1/invoices")
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        body = await response.json()
        assert body["error"]["type"] == "api_error"
        assert body["error"]["code"] == "temporarily_unavailable"
        assert (await client.post("/bug")).status == 500  # a bug is still a bug
