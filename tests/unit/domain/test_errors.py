from __future__ import annotations

import pytest

from app.domain import errors
from app.domain.errors import CheckoutError, InvalidTransition, restore_error

pytestmark = pytest.mark.unit


def all_errors() -> list[type[CheckoutError]]:
    found = []
    pending = [CheckoutError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return [cls for cls in found if cls.__module__ == errors.__name__]


def test_every_domain_error_has_its_own_stable_code_and_no_transport() -> None:
    classes = all_errors()
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes))
    assert all(cls.__doc__ for cls in classes)
    # The web layer decides statuses (web/errors.py); the domain knows nothing of HTTP.
    assert not any(hasattr(cls, "http_status") for cls in classes)


def test_an_invalid_transition_names_status_target_and_allowed() -> None:
    error = InvalidTransition("invoice", "inv_1", "pending", "paid", ["expired", "confirming"])
    assert error.code == "invalid_transition"
    assert error.param == "status"
    assert error.message == (
        "invoice inv_1 is pending and cannot become paid; allowed from pending: confirming, expired"
    )


def test_a_refusal_sent_by_class_name_comes_back_as_that_class() -> None:
    restored = restore_error("InvalidTransition", "invoice inv_1 is paid …", "status")
    assert type(restored) is InvalidTransition
    assert (restored.code, restored.message, restored.param) == (
        "invalid_transition",
        "invoice inv_1 is paid …",
        "status",
    )
    assert str(restored) == "invoice inv_1 is paid …"


def test_an_unknown_class_name_comes_back_as_the_root() -> None:
    restored = restore_error("NoSuchError", "something was refused")
    assert type(restored) is CheckoutError
    assert restored.code == "checkout_error"
