"""One error shape for every endpoint: ``{"error": {"type", "code", "message", "param"}}``.

Domain and service errors say what went wrong by their class (app/domain/errors.py,
app/services/errors.py); ``HTTP_STATUS`` below is the one place that turns a class into a status.
The web layer adds the errors only it can see (authentication, malformed JSON, unknown routes)
as ``ApiError``. Bad input is never a 500: a 500 means a bug, is logged with its traceback under
a request id, and the client gets that id to quote. PostgreSQL or Redis unreachable (stopped,
restarting, a connection cut) is no bug either: the 503 of ``DependencyUnavailable``, to retry.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import psycopg2
from aiohttp import web as aioweb
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.adapters.telemetry import current_request_id
from app.domain.errors import (
    CheckoutError,
    Conflict,
    Forbidden,
    NotFound,
    RuleViolation,
    TooManyAttempts,
    Unauthenticated,
)
from app.services.errors import DependencyUnavailable

logger = logging.getLogger(__name__)

Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]

# The status of an error is that of the first of its classes (most specific first) found here:
# the kinds of error the domain and the services raise, and the input being wrong otherwise.
HTTP_STATUS: Final[Mapping[type[CheckoutError], int]] = {
    Unauthenticated: 401,
    Forbidden: 403,
    TooManyAttempts: 429,
    NotFound: 404,
    Conflict: 409,
    RuleViolation: 422,
    DependencyUnavailable: 503,
    CheckoutError: 400,
}

# What a request meets when PostgreSQL or Redis does not answer: a 503 with Retry-After and one
# warning line, not a 500 with a traceback per request for as long as the outage lasts.
UNREACHABLE: Final[tuple[type[BaseException], ...]] = (
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
)

_TYPES_BY_STATUS: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "business_rule_error",
    429: "rate_limit_error",
}


class ApiError(CheckoutError):
    """An error found by the web layer itself; status and code given per instance."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, param=param)
        self.status = status
        self.error_code = code
        self.headers = headers or {}


def invalid_input(error: ValidationError) -> ApiError:
    """The first problem pydantic found, named by its field."""
    first = error.errors()[0] if error.errors() else {"loc": (), "msg": str(error)}
    param = ".".join(str(part) for part in first.get("loc", ())) or None
    message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
    return ApiError(400, "parameter_invalid", message[:300], param=param)


def status_for(error: CheckoutError) -> int:
    if isinstance(error, ApiError):
        return error.status
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 400  # pragma: no cover - CheckoutError itself is in the table


def error_body(error: CheckoutError) -> dict[str, str | None]:
    """The ``error`` object of the one error shape."""
    return {
        "type": _TYPES_BY_STATUS.get(status_for(error), "api_error"),
        "code": error.error_code if isinstance(error, ApiError) else error.code,
        "message": error.message,
        "param": error.param,
    }


def error_response(
    status: int, body: dict[str, str | None], headers: dict[str, str] | None = None
) -> aioweb.Response:
    return aioweb.json_response({"error": body}, status=status, headers=headers)


def checkout_error_response(error: CheckoutError) -> aioweb.Response:
    status = status_for(error)
    headers = dict(error.headers) if isinstance(error, ApiError) else {}
    if status == 503:
        headers.setdefault("Retry-After", "1")  # what is unavailable now is usually back soon
    elif status == 401:
        code = error_body(error)["code"]
        headers.setdefault("WWW-Authenticate", f'Bearer realm="crypto-checkout", error="{code}"')
    elif isinstance(error, TooManyAttempts):
        headers.setdefault("Retry-After", str(max(1, math.ceil(error.retry_after))))
    return error_response(status, error_body(error), headers)


def http_status_error(status: int, message: str) -> aioweb.Response:
    code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
        status, "http_error"
    )
    body: dict[str, str | None] = {
        "type": _TYPES_BY_STATUS.get(status, "api_error"),
        "code": code,
        "message": message,
        "param": None,
    }
    return error_response(status, body)


@aioweb.middleware
async def error_middleware(request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
    try:
        return await handler(request)
    except CheckoutError as exc:
        return checkout_error_response(exc)
    except ValidationError as exc:
        # A command or record refused by the domain's own field types: the input is wrong.
        return checkout_error_response(invalid_input(exc))
    except aioweb.HTTPException as exc:
        if exc.status < 400:
            raise
        return http_status_error(exc.status, exc.reason)
    except UNREACHABLE as exc:
        detail = " ".join(str(exc).split())[:200]
        logger.warning(
            "%s %s: a dependency is unreachable: %s: %s",
            request.method,
            request.path,
            type(exc).__name__,
            detail,
        )
        return checkout_error_response(
            DependencyUnavailable("a service this request needs is unavailable; retry shortly")
        )
    except Exception:
        # The request's own id (web/tracing.py), the one its answer carries in X-Request-Id.
        request_id = current_request_id() or f"req_{secrets.token_hex(8)}"
        logger.exception("unhandled error in %s %s [%s]", request.method, request.path, request_id)
        body: dict[str, str | None] = {
            "type": "api_error",
            "code": "internal_error",
            "message": f"internal error; quote {request_id} when reporting it",
            "param": None,
        }
        return error_response(500, body)
