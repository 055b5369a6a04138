"""The invoice list's pagination cursor: opaque, exact, and refused when it is not ours."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.adapters.postgres.projections import InvalidCursor, decode_cursor, encode_cursor

pytestmark = pytest.mark.unit

invoice_ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:\-]{0,60}\Z")
instants = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(9998, 12, 31),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)


@given(instants, invoice_ids)
def test_a_cursor_gives_back_exactly_the_position_it_was_made_from(
    created_at: datetime, invoice_id: str
) -> None:
    cursor = encode_cursor(created_at, invoice_id)
    decoded_at, decoded_id = decode_cursor(cursor)
    assert decoded_id == invoice_id
    assert decoded_at == created_at  # to the microsecond: keyset pagination compares exactly
    assert decoded_at.utcoffset() == created_at.utcoffset()


def test_a_cursor_is_url_safe_text_without_padding() -> None:
    cursor = encode_cursor(datetime(2024, 5, 1, 12, 30, 0, 123456, tzinfo=UTC), "inv_" + "f" * 24)
    assert cursor.isascii()
    assert not set(cursor) & set("+/=")


def _opaque(json_text: str) -> str:
    return base64.urlsafe_b64encode(json_text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor",
        "éé",
        _opaque("null"),
        _opaque('["2024-05-01T00:00:00Z"]'),
        _opaque('["2024-05-01T00:00:00", "inv_x"]'),  # a time without its offset
        _opaque('["2024-05-01T00:00:00Z", 1]'),
        _opaque('["2024-05-01T00:00:00Z", ""]'),
        _opaque('["yesterday", "inv_x"]'),
        _opaque('{"created_at": "2024-05-01T00:00:00Z", "invoice_id": "inv_x"}'),
    ],
)
def test_anything_else_is_refused_naming_the_cursor_parameter(cursor: str) -> None:
    with pytest.raises(InvalidCursor) as refused:
        decode_cursor(cursor)
    assert refused.value.param == "cursor"
    assert refused.value.code == "cursor_invalid"


@given(st.text(max_size=80))
def test_arbitrary_text_is_a_cursor_or_a_400_never_a_crash(text: str) -> None:
    try:
        created_at, invoice_id = decode_cursor(text)
    except InvalidCursor:
        return
    assert created_at.tzinfo is not None
    assert invoice_id
