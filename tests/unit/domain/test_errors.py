from __future__ import annotations

import pytest

from app.domain import errors
from app.domain.errors import CheckoutError, InvalidTransition

pytestmark = pytest.mark.unit


def all_errors() -> list[type[CheckoutError]]:
    found = []
    pending = [CheckoutError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return [cls for cls in found if cls.__module__ == errors.__name__]


def test_every_domain_error_has_its_own_stable_code_and_an_http_status() -> None:
    classes = all_errors()
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes))
    assert {cls.http_status for cls in classes} <= {400, 404, 409, 422}
    assert all(cls.__doc__ for cls in classes)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            errors.AmountZero("amount must be greater than zero", param="amount"),
            {
                "type": "invalid_request_error",
                "code": "amount_zero",
                "message": "amount must be greater than zero",
                "param": "amount",
            },
        ),
        (
            errors.InvoiceNotFound("invoice inv_1 does not exist", param="invoice_id"),
            {
                "type": "not_found_error",
                "code": "invoice_not_found",
                "message": "invoice inv_1 does not exist",
                "param": "invoice_id",
            },
        ),
        (
            errors.AlreadyExists("taken"),
            {"type": "conflict_error", "code": "already_exists", "message": "taken", "param": None},
        ),
    ],
)
def test_errors_render_the_one_error_shape(error: CheckoutError, expected: dict) -> None:
    assert error.to_dict() == expected
    assert str(error) == expected["message"]


def test_an_invalid_transition_is_a_422_naming_status_target_and_allowed() -> None:
    error = InvalidTransition("invoice", "inv_1", "pending", "paid", ["expired", "confirming"])
    assert error.http_status == 422
    assert error.error_type == "business_rule_error"
    assert error.param == "status"
    assert error.message == (
        "invoice inv_1 is pending and cannot become paid; allowed from pending: confirming, expired"
    )


def test_an_unmapped_status_renders_as_an_api_error() -> None:
    class Teapot(CheckoutError):
        """Only for this test."""

        http_status = 418

    assert Teapot("short and stout").error_type == "api_error"
