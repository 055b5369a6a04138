"""One error shape for every endpoint: ``{"error": {"type", "code", "message", "param"}}``.

Domain errors carry their own code and HTTP status (app/domain/errors.py); the web layer adds
the errors only it can see (authentication, malformed JSON, unknown routes, rate limits). Bad
input is never a 500: a 500 means a bug, is logged with its traceback under a request id, and the
client gets that id to quote.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import ClassVar

from aiohttp import web as aioweb

from app.domain.errors import CheckoutError

logger = logging.getLogger(__name__)

Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]

_TYPES_BY_STATUS = {
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

    http_status: ClassVar[int] = 400

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

    def to_dict(self) -> dict[str, str | None]:
        return {
            "type": _TYPES_BY_STATUS.get(self.status, "api_error"),
            "code": self.error_code,
            "message": self.message,
            "param": self.param,
        }


def error_response(
    status: int, body: dict[str, str | None], headers: dict[str, str] | None = None
) -> aioweb.Response:
    return aioweb.json_response({"error": body}, status=status, headers=headers)


def checkout_error_response(exc: CheckoutError) -> aioweb.Response:
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.to_dict(), exc.headers)
    return error_response(exc.http_status, exc.to_dict())


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
    except aioweb.HTTPException as exc:
        if exc.status < 400:
            raise
        return http_status_error(exc.status, exc.reason)
    except Exception:
        request_id = f"req_{secrets.token_hex(8)}"
        logger.exception("unhandled error in %s %s [%s]", request.method, request.path, request_id)
        body: dict[str, str | None] = {
            "type": "api_error",
            "code": "internal_error",
            "message": f"internal error; quote {request_id} when reporting it",
            "param": None,
        }
        return error_response(500, body)
