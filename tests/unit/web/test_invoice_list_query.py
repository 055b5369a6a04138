"""GET /api/v1/invoices query parameters: each one checked, a bad one is a 400 naming it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from multidict import MultiDict

from app.adapters.postgres.projections import encode_cursor
from app.domain.statuses import InvoiceStatus, PaymentException
from app.services.ports import InvoiceQuery
from web.errors import ApiError
from web.invoice_list import DEFAULT_LIMIT, parse_list_query

pytestmark = pytest.mark.unit


def parse(*pairs: tuple[str, str]) -> InvoiceQuery:
    return parse_list_query(MultiDict(pairs))


def refused(*pairs: tuple[str, str]) -> ApiError:
    with pytest.raises(ApiError) as error:
        parse(*pairs)
    assert error.value.status == 400
    return error.value


def test_no_parameters_asks_for_the_first_page_of_everything() -> None:
    assert parse() == InvoiceQuery(limit=DEFAULT_LIMIT)
    assert DEFAULT_LIMIT == 20


def test_every_parameter_is_read() -> None:
    cursor = encode_cursor(datetime(2024, 5, 2, tzinfo=UTC), "inv_b")
    query = parse(
        ("status", "paid,confirming"),
        ("payment_exception", "overpaid"),
        ("order_id", "order-1042"),
        ("created_from", "2024-05-01T00:00:00Z"),
        ("created_to", "2024-05-02T12:00:00+02:00"),
        ("limit", "2"),
        ("cursor", cursor),
    )
    assert query == InvoiceQuery(
        status=(InvoiceStatus.PAID, InvoiceStatus.CONFIRMING),
        payment_exception=(PaymentException.OVERPAID,),
        order_id="order-1042",
        created_from=datetime(2024, 5, 1, tzinfo=UTC),
        created_to=datetime(2024, 5, 2, 12, tzinfo=timezone(timedelta(hours=2))),
        limit=2,
        cursor=cursor,
    )


def test_statuses_may_be_comma_separated_or_repeated_and_count_once() -> None:
    query = parse(("status", "pending, paid"), ("status", "paid"), ("status", "expired"))
    assert query.status == (InvoiceStatus.PENDING, InvoiceStatus.PAID, InvoiceStatus.EXPIRED)


@pytest.mark.parametrize("limit", ["1", "20", "100"])
def test_limit_from_1_to_100(limit: str) -> None:
    assert parse(("limit", limit)).limit == int(limit)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("status", "refunded"),
        ("status", "paid,"),
        ("status", "PAID"),
        ("payment_exception", "late"),
        ("payment_exception", ""),
        ("order_id", ""),
        ("order_id", "x" * 201),
        ("created_from", "yesterday"),
        ("created_from", "2024-05-01"),  # a date is not an instant
        ("created_from", "2024-05-01T00:00:00"),  # no offset: which midnight?
        ("created_to", "2024-05-01T00:00:00 02:00"),  # a + that the URL turned into a space
        ("limit", "0"),
        ("limit", "101"),
        ("limit", "-1"),
        ("limit", "2.5"),
        ("limit", ""),
        ("limit", "١٢"),
        ("cursor", "not-a-cursor"),
        ("cursor", ""),
    ],
)
def test_a_bad_value_is_a_400_naming_its_parameter(param: str, value: str) -> None:
    error = refused((param, value))
    assert error.param == param
    assert param in error.message


def test_a_bad_cursor_is_reported_as_such() -> None:
    error = refused(("cursor", "bm9wZQ"))
    assert error.error_code == "cursor_invalid"


def test_an_unknown_parameter_is_refused_rather_than_ignored() -> None:
    error = refused(("stauts", "paid"))  # a typo would otherwise list every invoice
    assert error.param == "stauts"
    assert error.error_code == "parameter_unknown"


def test_a_single_valued_parameter_given_twice_is_refused() -> None:
    error = refused(("limit", "5"), ("limit", "10"))
    assert error.param == "limit"


def test_created_to_must_come_after_created_from() -> None:
    error = refused(
        ("created_from", "2024-05-02T00:00:00Z"), ("created_to", "2024-05-01T00:00:00Z")
    )
    assert error.param == "created_to"
