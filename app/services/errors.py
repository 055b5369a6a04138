"""Errors of the application layer: what a use case refuses beyond the domain's own rules."""

from __future__ import annotations

from app.domain.errors import CheckoutError, Conflict


class IdempotencyKeyReused(Conflict):
    """An ``Idempotency-Key`` used before with a different request."""

    code = "idempotency_key_reused"


class DependencyUnavailable(CheckoutError):
    """Something the answer depends on is unreachable right now; the same request may be retried."""

    code = "temporarily_unavailable"


class CommandTimeout(DependencyUnavailable):
    """The owning agent did not answer in time; the command may still apply, so retry it."""

    code = "command_timeout"


class LiveViewUnavailable(DependencyUnavailable):
    """The customer's live view could not be read or updated (Redis)."""

    code = "live_view_error"


class NoticeRejected(CheckoutError):
    """A notification channel refused a message for good (an unknown chat, a blocked bot, an
    invalid phone number): sending it again cannot help, so it is not retried."""

    code = "notice_rejected"
