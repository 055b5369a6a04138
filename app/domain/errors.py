"""Domain errors: one root, stable codes, grouped by what went wrong — never by transport.

The kind of an error is its class: the input is wrong, the aggregate is unknown, the command
conflicts with what already happened, the business rules forbid it. The web layer maps those
classes to HTTP statuses in one place (web/errors.py); agents send refusals to a waiting caller
by class name (``error_class``). Codes are part of the public API: integrators match on them, so
a code is never renamed, only added.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar


class CheckoutError(Exception):
    """Root of every error crypto-checkout raises on purpose."""

    code: ClassVar[str] = "checkout_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def error_class(name: str, code: str | None = None) -> type[CheckoutError]:
    """The ``CheckoutError`` subclass called ``name``, else the one with ``code``, else the root:
    how a refusal that crossed a process boundary becomes its class again. (The code alone is
    what workers of the previous release send.)"""
    pending: list[type[CheckoutError]] = [CheckoutError]
    by_code: type[CheckoutError] | None = None
    while pending:
        cls = pending.pop()
        if cls.__name__ == name:
            return cls
        if code is not None and by_code is None and cls.__dict__.get("code") == code:
            by_code = cls
        pending.extend(cls.__subclasses__())
    return by_code or CheckoutError


def restore_error(
    name: str, message: str, param: str | None = None, *, code: str | None = None
) -> CheckoutError:
    """An error of class ``name`` (or with ``code``) with ``message`` and ``param``, as it was
    raised elsewhere."""
    cls = error_class(name, code)
    error = cls.__new__(cls)  # subclasses may take other arguments; the three fields are enough
    CheckoutError.__init__(error, message, param=param)
    return error


# --- the input itself is wrong ----------------------------------------------------------------


class InvalidAmount(CheckoutError):
    """An amount that is not a decimal number of USDT."""

    code = "amount_invalid"


class AmountNegative(InvalidAmount):
    """An amount below zero."""

    code = "amount_negative"


class AmountZero(InvalidAmount):
    """A zero amount where only a positive one makes sense."""

    code = "amount_zero"


class AmountTooManyDecimals(InvalidAmount):
    """More decimals than USDT has (6)."""

    code = "amount_too_many_decimals"


class AmountTooLarge(InvalidAmount):
    """An amount above the platform's bound (see ``money.MAX_AMOUNT``)."""

    code = "amount_too_large"


class InvalidFeePercentage(CheckoutError):
    """A fee percentage outside [0, 100] or with more than 2 decimals."""

    code = "fee_percentage_invalid"


class InvalidConfirmations(CheckoutError):
    """A confirmation count outside the allowed range."""

    code = "confirmations_invalid"


class InvalidExpiry(CheckoutError):
    """An invoice whose expiry is not after its creation."""

    code = "expiry_invalid"


# --- unknown aggregates -----------------------------------------------------------------------


class NotFound(CheckoutError):
    """The aggregate a command names does not exist."""

    code = "not_found"


class InvoiceNotFound(NotFound):
    """No invoice with this id."""

    code = "invoice_not_found"


class PaymentNotFound(NotFound):
    """No payment with this id."""

    code = "payment_not_found"


class SettlementNotFound(NotFound):
    """No settlement with this id."""

    code = "settlement_not_found"


class RefundNotFound(NotFound):
    """No refund with this id."""

    code = "refund_not_found"


class PayoutNotFound(NotFound):
    """No payout with this id."""

    code = "payout_not_found"


# --- conflicts with what already happened -----------------------------------------------------


class Conflict(CheckoutError):
    """The request conflicts with what already happened; repeating it will not help."""

    code = "conflict"


class AlreadyExists(Conflict):
    """A creating command for an id that is taken, under a different command id."""

    code = "already_exists"


class AggregateMismatch(Conflict):
    """A command or event routed to an aggregate it does not belong to: a wiring defect."""

    code = "aggregate_mismatch"


class EventOutOfOrder(Conflict):
    """An event whose version does not follow the aggregate's; the stream has a gap or a fork.

    An operator should compare the aggregate's history with the event store for that aggregate
    id: a gap means an event was lost upstream, a fork means two writers decided on one aggregate.
    """

    code = "event_out_of_order"


# --- well-formed, but the business rules say no -----------------------------------------------


class RuleViolation(CheckoutError):
    """Well-formed, but the business rules forbid it in the current state."""

    code = "business_rule_violated"


class InvalidTransition(RuleViolation):
    """A command that would move an aggregate along an edge its state machine does not have."""

    code = "invalid_transition"

    def __init__(
        self,
        aggregate_type: str,
        aggregate_id: str,
        current: str,
        target: str,
        allowed: Iterable[str],
        *,
        reason: str | None = None,
    ) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        self.current = current
        self.target = target
        self.allowed = tuple(sorted(allowed))
        allowed_text = ", ".join(self.allowed) or "none (final status)"
        message = (
            f"{aggregate_type} {aggregate_id} is {current} and cannot become {target}"
            f"{f' ({reason})' if reason else ''}; allowed from {current}: {allowed_text}"
        )
        super().__init__(message, param="status")


class InvoiceNotDue(RuleViolation):
    """An expiry requested before the invoice's ``expires_at``."""

    code = "invoice_not_due"


class InvoiceNotUnderpaid(RuleViolation):
    """A resolution asked of an invoice that is not underpaid (or not yet resolvable: some of
    what it received is unconfirmed, or it was already refunded)."""

    code = "invoice_not_underpaid"


class PaymentAlreadyConfirmed(RuleViolation):
    """A request to take back a payment the invoice already counts as confirmed."""

    code = "payment_already_confirmed"


class InsufficientBalance(RuleViolation):
    """A refund or payout larger than the merchant's available balance."""

    code = "insufficient_balance"


class RefundNotAllowed(RuleViolation):
    """A refund the invoice cannot give: not settled, or more than is left to refund."""

    code = "refund_not_allowed"


class AddressNotAllowed(RuleViolation):
    """A destination that is one of the platform's own addresses (a deposit address or the hot
    wallet): money sent there would come back as a payment, or go nowhere."""

    code = "address_not_allowed"


class TransferNotChangeable(RuleViolation):
    """A payout that can no longer be approved or cancelled (it is being signed or sent)."""

    code = "transfer_not_changeable"


# --- who is asking: credentials and permissions -------------------------------------------------


class Unauthenticated(CheckoutError):
    """The request's credentials do not say who is asking (missing, unknown, expired)."""

    code = "authentication_required"


class InvalidCredentials(Unauthenticated):
    """An email and password that do not match an account; never says which of the two."""

    code = "invalid_credentials"


class InvalidRefreshToken(Unauthenticated):
    """A refresh token that is unknown, expired, revoked or already used."""

    code = "invalid_refresh_token"


class Forbidden(CheckoutError):
    """Who is asking is known, and may not do this."""

    code = "forbidden"


class InsufficientScope(Forbidden):
    """The key or the user's role lacks the scope the operation needs; ``param`` names it."""

    code = "insufficient_scope"


class MerchantSuspended(Forbidden):
    """The platform suspended the merchant: its keys and users are refused (its invoices are
    still watched and settled)."""

    code = "merchant_suspended"


class TooManyAttempts(CheckoutError):
    """Too many failed attempts (sign-ins) for the account or the address; retry later."""

    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
