"""Decoding USDT Transfer logs from java-tron receipts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import base58
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.adapters.tron.addresses import account_id, from_word, to_base58
from app.adapters.tron.logs import TRANSFER_TOPIC, MalformedReceipt, decode_transfers

pytestmark = pytest.mark.unit

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
USDT_HEX20 = "a614f803b6fd780986a42c78ec9c7f77e6ded13c"
ALICE = "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"
BOB = "TSeJkUh4Qv67VNFwY8LaAxERygNdy6NQZK"
BLOCK_ID = "0000000000000064" + "ab" * 24
WHEN = datetime(2024, 1, 1, tzinfo=UTC)


def word(address: str) -> str:
    return "00" * 12 + account_id(address).hex()


def log(amount: int, *, address: str | None = None, sender: str = ALICE) -> dict[str, Any]:
    # java-tron with visible=true: base58check of the 20 bytes without 41 (wallet-cli issue 470).
    visible = base58.b58encode_check(bytes.fromhex(USDT_HEX20)).decode()
    return {
        "address": visible if address is None else address,
        "topics": [TRANSFER_TOPIC, word(sender), word(BOB)],
        "data": f"{amount:064x}",
    }


def receipt(txid: str, *logs: dict[str, Any], result: str | None = "SUCCESS") -> dict[str, Any]:
    out: dict[str, Any] = {"id": txid, "blockNumber": 100, "receipt": {}}
    if result is not None:
        out["receipt"]["result"] = result
    if result not in (None, "SUCCESS"):
        out["result"] = "FAILED"
    if logs:
        out["log"] = list(logs)
    return out


def decode(*receipts: dict[str, Any]) -> list[tuple[str, int, int]]:
    transfers = decode_transfers(
        receipts, contract=USDT, block_number=100, block_id=BLOCK_ID, block_timestamp=WHEN
    )
    return [(t.tx_hash, t.log_index, t.amount) for t in transfers]


@pytest.mark.parametrize(
    "address",
    [
        None,  # visible=true: base58check of the 20 bytes
        USDT_HEX20,  # visible=false: 20-byte hex
        "41" + USDT_HEX20,
        USDT,
    ],
)
def test_the_log_address_is_recognised_in_every_form_a_node_prints(address: str | None) -> None:
    assert decode(receipt("aa" * 32, log(5, address=address))) == [("aa" * 32, 0, 5)]


def test_the_transfer_carries_block_parties_and_amount() -> None:
    [transfer] = decode_transfers(
        [receipt("AA" * 32, log(9_990_000))],
        contract=USDT,
        block_number=100,
        block_id=BLOCK_ID,
        block_timestamp=WHEN,
    )

    assert transfer.tx_hash == "aa" * 32
    assert (transfer.from_address, transfer.to_address) == (ALICE, BOB)
    assert (transfer.block_number, transfer.block_id, transfer.block_timestamp) == (
        100,
        BLOCK_ID,
        WHEN,
    )
    assert transfer.contract_address == USDT
    assert transfer.transfer_id == f"{'aa' * 32}:0"


@pytest.mark.parametrize("result", ["REVERT", "OUT_OF_ENERGY", "OUT_OF_TIME", None])
def test_unsuccessful_receipts_produce_nothing(result: str | None) -> None:
    assert decode(receipt("aa" * 32, log(5), result=result)) == []


def test_other_contracts_and_other_events_are_ignored_but_keep_their_log_position() -> None:
    other_token = log(1, address="TEkxiTehnzSmSe2XqrBj4w32RUN966rdz8")
    approval = {**log(2), "topics": ["8c5be1e5" + "00" * 28, word(ALICE), word(BOB)]}
    anonymous = {**log(3), "topics": [TRANSFER_TOPIC]}

    found = decode(receipt("aa" * 32, other_token, approval, anonymous, log(4), log(5)))

    assert found == [("aa" * 32, 3, 4), ("aa" * 32, 4, 5)]


def test_transfers_keep_block_order_across_transactions() -> None:
    found = decode(receipt("01" * 32, log(1), log(2)), receipt("02" * 32, log(3)))

    assert found == [("01" * 32, 0, 1), ("01" * 32, 1, 2), ("02" * 32, 0, 3)]


def test_an_undecodable_usdt_transfer_is_an_error_not_a_skip() -> None:
    broken = {**log(1), "data": "not-hex"}

    with pytest.raises(MalformedReceipt, match="block 100"):
        decode(receipt("aa" * 32, broken))


@given(
    st.integers(min_value=0, max_value=2**256 - 1),
    st.binary(min_size=20, max_size=20),
    st.binary(min_size=20, max_size=20),
)
def test_any_amount_and_parties_decode_exactly(amount: int, sender: bytes, receiver: bytes) -> None:
    entry = {
        "address": USDT,
        "topics": [TRANSFER_TOPIC, "00" * 12 + sender.hex(), "00" * 12 + receiver.hex()],
        "data": f"{amount:064x}",
    }
    [transfer] = decode_transfers(
        [receipt("aa" * 32, entry)],
        contract=USDT,
        block_number=1,
        block_id=BLOCK_ID,
        block_timestamp=WHEN,
    )

    assert transfer.amount == amount
    assert account_id(transfer.from_address) == sender
    assert account_id(transfer.to_address) == receiver


@given(st.binary(min_size=20, max_size=20))
def test_every_address_form_names_the_same_account(raw: bytes) -> None:
    t_address = base58.b58encode_check(b"\x41" + raw).decode()

    for form in (t_address, raw.hex(), "41" + raw.hex(), "0x" + raw.hex(), raw.hex().upper()):
        assert to_base58(form) == t_address
    assert from_word("00" * 12 + raw.hex()) == t_address
    assert account_id(base58.b58encode_check(raw).decode()) == raw


@pytest.mark.parametrize(
    "bad", ["", "T123", "41" + "00" * 18, "zz" * 20, "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6T"]
)
def test_non_addresses_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        to_base58(bad)
