"""Errors of the Telegram Bot API stand-in: Bot API failures and bad control-API requests.

The descriptions are Telegram's own, word for word, because bots (and aiogram's exception
mapping) match on them: a test that passes here must see what production would answer.
"""

from __future__ import annotations


class SimError(Exception):
    """Root of every error the stand-in raises."""


class ApiError(SimError):
    """A Bot API call fails: rendered as `{"ok": false, "error_code", "description"}`."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after


def bad_request(detail: str) -> ApiError:
    """Telegram's 400: the description always starts with "Bad Request: "."""
    return ApiError(400, f"Bad Request: {detail}")


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


def entity_too_large() -> ApiError:
    return ApiError(413, "Request Entity Too Large")


def chat_not_found() -> ApiError:
    return bad_request("chat not found")


def blocked_by_user() -> ApiError:
    return ApiError(403, "Forbidden: bot was blocked by the user")


def webhook_active() -> ApiError:
    return ApiError(
        409,
        "Conflict: can't use getUpdates method while webhook is active; "
        "use deleteWebhook to delete the webhook first",
    )


def terminated_by_other_poll() -> ApiError:
    return ApiError(
        409,
        "Conflict: terminated by other getUpdates request; "
        "make sure that only one bot instance is running",
    )


class BadControlRequest(SimError):
    """A /sim/ request names a bad field: answered 400 with the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class UnknownResource(SimError):
    """A /sim/ request names a bot or chat the stand-in does not have: answered 404."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
