"""Dead-letter records read back for ``checkout dlq`` (app/runtime/dead_letters.py): what an
agent wrote is what a replay sends, bytes, key and headers, with one replay marker."""

from __future__ import annotations

import orjson
import pytest

from app.runtime.dead_letters import (
    REPLAY_HEADER,
    DeadLetter,
    UnreadableLetter,
    message_headers,
    read_letter,
)

pytestmark = pytest.mark.unit

DLQ = "ns.checkout.invoice-commands.dlq"


def written(**overrides: object) -> bytes:
    fields: dict[str, object] = {
        "agent": "invoice_agent",
        "error": ValueError("refused"),
        "key": b"inv_1",
        "value": b'{"kind":"cancel"}',
        "source_topic": "ns.checkout.invoice-commands",
        "partition": 4,
        "offset": 17,
        "headers": (("traceparent", b"00-abc-01"),),
    }
    fields.update(overrides)
    return orjson.dumps(DeadLetter(**fields).record())  # type: ignore[arg-type]


def test_a_letter_reads_back_as_the_message_that_failed() -> None:
    letter = read_letter(DLQ, 1, 9, written())
    assert letter.letter_id == f"{DLQ}:1:9"
    assert (letter.key, letter.value) == (b"inv_1", b'{"kind":"cancel"}')
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "ns.checkout.invoice-commands",
        4,
        17,
    )
    assert (letter.agent, letter.error_type, letter.error) == (
        "invoice_agent",
        "ValueError",
        "refused",
    )
    assert "ValueError: refused" in letter.traceback


def test_bytes_that_are_not_utf8_survive_the_round_trip() -> None:
    raw = bytes(range(256))
    letter = read_letter(DLQ, 0, 0, written(key=None, value=raw, headers=(("bin", raw),)))
    assert letter.key is None and letter.value == raw and letter.headers == (("bin", raw),)


def test_a_replay_keeps_the_headers_and_carries_one_marker() -> None:
    letter = read_letter(DLQ, 2, 5, written())
    assert letter.replay_headers() == [
        ("traceparent", b"00-abc-01"),
        (REPLAY_HEADER, f"{DLQ}:2:5".encode()),
    ]
    # A letter that was itself a replay does not pile up markers.
    again = read_letter(
        DLQ, 0, 8, written(headers=(("traceparent", b"x"), (REPLAY_HEADER, b"old:0:1")))
    )
    assert again.replay_headers() == [("traceparent", b"x"), (REPLAY_HEADER, f"{DLQ}:0:8".encode())]


def test_letters_written_before_headers_were_kept_have_none() -> None:
    record = orjson.loads(written())
    del record["headers"]
    assert read_letter(DLQ, 0, 1, orjson.dumps(record)).headers == ()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"agent": "x"}',
        b'{"agent": "x", "source": {"topic": "t"}, "key": {"base64": "***"}}',
        b'{"agent": "x", "source": {"topic": "t"}, "key": "plain"}',
    ],
)
def test_a_record_that_is_no_dead_letter_is_named_as_such(raw: bytes) -> None:
    with pytest.raises(UnreadableLetter, match=f"{DLQ}:0:3 is not a dead letter"):
        read_letter(DLQ, 0, 3, raw)


def test_headers_come_from_pairs_or_a_mapping() -> None:
    assert message_headers([("a", b"1"), ("b", "2")]) == (("a", b"1"), ("b", b"2"))
    assert message_headers({"a": b"1"}) == (("a", b"1"),)
    assert message_headers(None) == ()
