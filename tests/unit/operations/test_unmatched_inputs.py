"""What ``checkout chain unmatched resolve`` accepts from an operator: a transfer id as the list
shows it, and a bounded one-line note; everything else is refused before the database is asked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.adapters.postgres.unmatched import (
    MAX_NOTE,
    UnmatchedInputError,
    check_text,
    parse_transfer_id,
)
from app.runtime.unmatched_commands import usdt6

pytestmark = pytest.mark.unit

TX = "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{TX}:0", f"{TX}:0"),
        (f"{TX}:17", f"{TX}:17"),
        (f"{TX.upper()}:3", f"{TX}:3"),  # as an explorer may print it
        (f"{TX}:2147483647", f"{TX}:2147483647"),
    ],
)
def test_a_transfer_id_is_the_tx_hash_and_log_index(text: str, expected: str) -> None:
    assert parse_transfer_id(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        TX,
        f"{TX}:",
        f"{TX[:-1]}:0",
        f"{TX}0:0",
        f"{'g' * 64}:0",
        f"{TX}:-1",
        f"{TX}:01",
        f"{TX}:2147483648",
        f"{TX}:1e3",
        f"{TX}:0\x00",
        f"{TX}:0\n; DROP TABLE unmatched_transfers",
        f"{TX}:{'9' * 5000}",
        f"0x{TX}:0",
    ],
)
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(UnmatchedInputError):
        parse_transfer_id(text)


@given(st.text(max_size=200))
def test_no_text_is_taken_for_a_transfer_id_unless_it_is_one(text: str) -> None:
    try:
        parsed = parse_transfer_id(text)
    except UnmatchedInputError:
        return
    tx_hash, _, index = parsed.partition(":")
    assert len(tx_hash) == 64 and int(index) >= 0


def test_a_note_is_one_line_of_at_most_500_characters() -> None:
    assert check_text("refunded in tx 7f…, ticket #42", field="--note", limit=MAX_NOTE)
    assert check_text("x" * MAX_NOTE, field="--note", limit=MAX_NOTE) == "x" * MAX_NOTE


@pytest.mark.parametrize(
    ("note", "says"),
    [
        ("x" * (MAX_NOTE + 1), "at most 500"),
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("refunded\x00", "control characters"),
        ("refunded\nsecond line", "control characters"),
        ("\x1b[31mred\x1b[0m", "control characters"),
        ("bidi \x85 next line", "control characters"),
    ],
)
def test_a_bad_note_is_refused_naming_the_problem(note: str, says: str) -> None:
    with pytest.raises(UnmatchedInputError, match=says):
        check_text(note, field="--note", limit=MAX_NOTE)


def test_amounts_are_listed_with_all_six_decimals() -> None:
    assert usdt6(1) == "0.000001"
    assert usdt6(9_990_000) == "9.990000"
    assert usdt6(1_234_000_000_000) == "1234000.000000"
