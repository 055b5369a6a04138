"""UnmatchedTransferReceived: received money that paid no invoice, one event per transfer."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from pydantic import ValidationError

from app.domain.errors import AmountZero
from app.domain.events import (
    EVENT_TYPES,
    PLATFORM_MERCHANT_ID,
    UnmatchedTransferReceived,
    parse_event,
)

from .factories import (
    BLOCK,
    CUSTOMER_ADDRESS,
    DEPOSIT_ADDRESS,
    INVOICE_ID,
    MERCHANT_ID,
    T0,
    block_id,
    transfer_observed,
    tx_hash,
)

pytestmark = pytest.mark.unit


def test_an_unknown_addresss_transfer_is_the_platforms_with_everything_the_chain_said() -> None:
    transfer = transfer_observed(amount="12.5")

    event = UnmatchedTransferReceived.of(transfer, "not_a_deposit_address")

    assert EVENT_TYPES["UnmatchedTransferReceived"] is UnmatchedTransferReceived
    assert (event.aggregate_type, event.aggregate_id, event.aggregate_version) == (
        "transfer",
        f"{tx_hash(1)}:0",
        1,
    )
    assert event.merchant_id == PLATFORM_MERCHANT_ID
    assert event.causation_id == f"unmatched:{tx_hash(1)}:0"
    assert event.occurred_at == transfer.block_timestamp
    data = event.data
    assert (data.tx_hash, data.log_index) == (tx_hash(1), 0)
    assert (data.block_number, data.block_id) == (BLOCK, block_id(BLOCK))
    assert (data.from_address, data.to_address) == (CUSTOMER_ADDRESS, DEPOSIT_ADDRESS)
    assert data.amount == 12_500_000
    assert (data.reason, data.invoice_id, data.merchant_id) == ("not_a_deposit_address", None, None)


def test_a_late_transfer_names_its_invoice_and_merchant() -> None:
    event = UnmatchedTransferReceived.of(
        transfer_observed(),
        "after_monitoring_window",
        invoice_id=INVOICE_ID,
        merchant_id=MERCHANT_ID,
    )
    assert event.merchant_id == MERCHANT_ID
    assert (event.data.invoice_id, event.data.merchant_id) == (INVOICE_ID, MERCHANT_ID)


def test_the_same_transfer_is_the_same_event_whatever_block_or_delivery_brought_it() -> None:
    first = UnmatchedTransferReceived.of(transfer_observed(), "not_a_deposit_address")
    again = UnmatchedTransferReceived.of(transfer_observed(), "not_a_deposit_address")
    # Included again in another block after a reorg: still aggregate version 1 of this transfer.
    moved = UnmatchedTransferReceived.of(
        transfer_observed(block=BLOCK + 3), "not_a_deposit_address"
    )
    assert first == again
    assert moved.event_id == first.event_id
    other_log = UnmatchedTransferReceived.of(
        transfer_observed(log_index=1), "not_a_deposit_address"
    )
    other_tx = UnmatchedTransferReceived.of(transfer_observed(n=2), "not_a_deposit_address")
    assert len({first.event_id, other_log.event_id, other_tx.event_id}) == 3


def test_on_the_wire_amounts_are_decimal_strings_and_the_event_reads_back() -> None:
    event = UnmatchedTransferReceived.of(
        transfer_observed(amount="0.000001", block_timestamp=T0 + timedelta(days=9)),
        "after_monitoring_window",
        invoice_id=INVOICE_ID,
        merchant_id=MERCHANT_ID,
    )
    wire = orjson.loads(event.model_dump_json())
    assert wire["event_type"] == "UnmatchedTransferReceived"
    assert wire["data"]["amount"] == "0.000001"
    assert wire["data"]["block_timestamp"].endswith("Z")
    assert parse_event(event.model_dump_json()) == event


def test_a_zero_amount_is_never_an_unmatched_transfer() -> None:
    # Zero-value transfers are spam the payment agent only counts; the event refuses them too.
    with pytest.raises(AmountZero):
        UnmatchedTransferReceived.of(transfer_observed(amount="0"), "not_a_deposit_address")


def test_the_reason_is_one_of_the_two_that_leave_money_behind() -> None:
    with pytest.raises(ValidationError):
        UnmatchedTransferReceived.of(transfer_observed(), "zero_amount")  # type: ignore[arg-type]
