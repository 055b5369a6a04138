"""Refunds and payouts in PostgreSQL, kept in the same transactions as the ledger they move.

migrations/0016_money_out.sql. Every change of an outgoing transfer is one transaction that
updates its row (only if it is still in the stage the caller read: optimistic, so two drivers
racing on one transfer cannot both act), books its ledger movement once per (kind, reference),
and writes its events to the outbox. A request takes a per-merchant advisory lock, so two
concurrent payouts cannot both spend one balance.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from app.adapters.postgres.journal import book
from app.adapters.postgres.pool import Connections, SqlStore
from app.domain.errors import (
    AlreadyExists,
    InsufficientBalance,
    RefundNotAllowed,
)
from app.domain.events import DomainEvent
from app.domain.ledger import merchant_account
from app.domain.money import format_usdt
from app.domain.money_out import (
    Attempt,
    OutgoingTransfer,
    Receipt,
    Stage,
    Step,
    TransferKind,
)
from app.services.ports import RefundContext, SigningAnswerRow, StaleTransfer

_COLUMNS: Final = (
    "transfer_id",
    "kind",
    "merchant_id",
    "invoice_id",
    "source",
    "amount",
    "to_address",
    "stage",
    "version",
    "failure_reason",
    "approval",
    "approved_by",
    "network_fee_payer",
    "network_fee_charged",
    "attempt",
    "txid",
    "raw_data",
    "raw_data_hex",
    "expiration_ms",
    "signature",
    "broadcast_accepted",
    "block_number",
    "fee_sun",
    "energy_usage",
    "net_usage",
    "created_at",
    "updated_at",
    "approved_at",
    "broadcast_at",
    "finished_at",
)
_SELECT: Final = f"SELECT {', '.join(_COLUMNS)} FROM outgoing_transfers"  # noqa: S608


class PostgresMoneyOut(SqlStore):
    """``origin`` is the platform's app id: its transfers and events are the only ones its
    leader drives and publishes (migrations/0020_money_out_origin.sql)."""

    def __init__(self, pool: Connections, *, origin: str) -> None:
        super().__init__(pool)
        self._origin = origin

    # --- requests ---------------------------------------------------------------------------

    async def request(
        self,
        step: Step,
        *,
        idempotency_key: str,
        fingerprint: str,
        refundable_check: bool = False,
    ) -> tuple[OutgoingTransfer, bool]:
        """Record a new refund or payout with its debit, once per idempotency key.

        Returns the transfer and whether it was already there (a replay). Raises
        ``AlreadyExists`` when the key was used for a different request, ``InsufficientBalance``
        when the balance does not cover the debit, ``RefundNotAllowed`` when the invoice has not
        that much left to refund (checked under the merchant's lock, with the debit).
        """
        transfer = step.state
        async with self._transaction() as cur:
            await cur.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                (f"money-out:{transfer.merchant_id}",),
            )
            existing = await self._by_key(cur, transfer, idempotency_key)
            if existing is not None:
                held, held_fingerprint = existing
                if held_fingerprint != fingerprint:
                    raise AlreadyExists(
                        f"Idempotency-Key {idempotency_key!r} was used for another request",
                        param="Idempotency-Key",
                    )
                return held, True
            debit = transfer.amount + transfer.network_fee_charged
            await cur.execute(
                "SELECT coalesce(sum(amount), 0) FROM ledger_entries"
                " WHERE account = %s AND currency = 'USDT'",
                (merchant_account(transfer.merchant_id),),
            )
            available = int((await cur.fetchone())[0])
            # What an unsettled invoice received is not the merchant's balance: not checked here
            # (the invoice's resolution fixed the amount, once: one refund per resolution key).
            if transfer.source == "balance" and available < debit:
                raise InsufficientBalance(
                    f"the available balance is {format_usdt(available)} USDT; this needs"
                    f" {format_usdt(debit)} USDT",
                    param="amount",
                )
            if refundable_check and transfer.invoice_id is not None:
                context = await self._refund_context(cur, transfer.merchant_id, transfer.invoice_id)
                left = (
                    context.unsettled
                    if transfer.source == "received"
                    else (context.settled_gross or 0) - context.refunded
                )
                if transfer.amount > left:
                    raise RefundNotAllowed(
                        f"invoice {transfer.invoice_id} has {format_usdt(left)} USDT left"
                        " to refund",
                        param="amount",
                    )
            await cur.execute(
                "INSERT INTO outgoing_transfers (origin, transfer_id, kind, merchant_id,"
                " invoice_id, source, amount, to_address, stage, version, approval, approved_by,"
                " network_fee_payer, network_fee_charged, idempotency_key, request_fingerprint,"
                " created_at, updated_at, approved_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                " %s, %s)",
                (
                    self._origin,
                    transfer.transfer_id,
                    transfer.kind.value,
                    transfer.merchant_id,
                    transfer.invoice_id,
                    transfer.source,
                    transfer.amount,
                    transfer.to_address,
                    transfer.stage.value,
                    transfer.version,
                    transfer.approval,
                    transfer.approved_by,
                    transfer.network_fee_payer,
                    transfer.network_fee_charged,
                    idempotency_key,
                    fingerprint,
                    transfer.created_at,
                    transfer.updated_at,
                    transfer.approved_at,
                ),
            )
            await book(cur, step.movement)
            await self._outbox(cur, step.events, self._origin)
        return transfer, False

    async def by_key(
        self, merchant_id: str, kind: TransferKind, key: str
    ) -> tuple[OutgoingTransfer, str] | None:
        """The transfer an idempotency key made, with the fingerprint of its request."""
        row = await self._fetchone(
            f"{_SELECT.replace(' FROM', ', request_fingerprint FROM')}"
            " WHERE merchant_id = %s AND kind = %s AND idempotency_key = %s",
            (merchant_id, kind.value, key),
        )
        return None if row is None else (_transfer(row[:-1]), row[-1])

    async def refund_context(self, merchant_id: str, invoice_id: str) -> RefundContext:
        async with self._transaction() as cur:
            return await self._refund_context(cur, merchant_id, invoice_id)

    async def payout_threshold(self, merchant_id: str) -> int | None:
        """The merchant's own automatic-approval threshold, if an operator set one."""
        row = await self._fetchone(
            "SELECT payout_approval_threshold FROM merchants WHERE merchant_id = %s",
            (merchant_id,),
        )
        return None if row is None or row[0] is None else int(row[0])

    async def is_ours(self, address: str) -> bool:
        row = await self._fetchone("SELECT 1 FROM deposit_addresses WHERE address = %s", (address,))
        return row is not None

    # --- reads ------------------------------------------------------------------------------

    async def get(
        self, transfer_id: str, *, merchant_id: str | None = None
    ) -> OutgoingTransfer | None:
        sql = f"{_SELECT} WHERE transfer_id = %s"
        params: list[Any] = [transfer_id]
        if merchant_id is not None:
            sql += " AND merchant_id = %s"
            params.append(merchant_id)
        row = await self._fetchone(sql, params)
        return None if row is None else _transfer(row)

    async def list(
        self,
        merchant_id: str,
        kind: TransferKind,
        *,
        limit: int,
        before: tuple[datetime, str] | None = None,
        invoice_id: str | None = None,
    ) -> builtins.list[OutgoingTransfer]:
        clauses = ["merchant_id = %s", "kind = %s"]
        params: builtins.list[Any] = [merchant_id, kind.value]
        if invoice_id is not None:
            clauses.append("invoice_id = %s")
            params.append(invoice_id)
        if before is not None:
            clauses.append("(created_at, transfer_id) < (%s, %s)")
            params.extend(before)
        params.append(limit)
        rows = await self._fetchall(
            f"{_SELECT} WHERE {' AND '.join(clauses)}"
            " ORDER BY created_at DESC, transfer_id DESC LIMIT %s",
            params,
        )
        return [_transfer(row) for row in rows]

    async def open_transfers(self, limit: int) -> builtins.list[OutgoingTransfer]:
        """What the driver has to move on: approved, being signed, or broadcast (oldest first)."""
        rows = await self._fetchall(
            f"{_SELECT} WHERE origin = %s AND stage IN ('approved', 'signing', 'broadcast')"
            " ORDER BY approved_at, transfer_id LIMIT %s",
            (self._origin, limit),
        )
        return [_transfer(row) for row in rows]

    async def waiting_for_approval(self, limit: int) -> builtins.list[OutgoingTransfer]:
        rows = await self._fetchall(
            f"{_SELECT} WHERE origin = %s AND stage = 'requested'"
            " ORDER BY created_at, transfer_id LIMIT %s",
            (self._origin, limit),
        )
        return [_transfer(row) for row in rows]

    # --- changes ----------------------------------------------------------------------------

    async def save(self, before: OutgoingTransfer, step: Step) -> None:
        """Store ``step`` if the row is still as ``before`` read it, else ``StaleTransfer``."""
        after = step.state
        attempt = after.attempt
        receipt = after.receipt
        async with self._transaction() as cur:
            await cur.execute(
                "UPDATE outgoing_transfers SET stage = %s, version = %s, failure_reason = %s,"
                " approved_by = %s, approved_at = %s, attempt = %s, txid = %s, raw_data = %s,"
                " raw_data_hex = %s, expiration_ms = %s, signature = %s,"
                " broadcast_accepted = %s, request_sent_at = CASE WHEN attempt = %s"
                " THEN request_sent_at END, block_number = %s, fee_sun = %s,"
                " energy_usage = %s, net_usage = %s, updated_at = %s, broadcast_at = %s,"
                " finished_at = %s"
                " WHERE transfer_id = %s AND stage = %s AND attempt = %s AND version = %s",
                (
                    after.stage.value,
                    after.version,
                    after.failure_reason,
                    after.approved_by,
                    after.approved_at,
                    attempt.number if attempt else 0,
                    attempt.txid if attempt else None,
                    json.dumps(attempt.raw_data) if attempt else None,
                    attempt.raw_data_hex if attempt else None,
                    attempt.expiration_ms if attempt else None,
                    attempt.signature if attempt else None,
                    after.broadcast_accepted,
                    attempt.number if attempt else 0,
                    receipt.block_number if receipt else None,
                    receipt.fee_sun if receipt else None,
                    receipt.energy_usage if receipt else None,
                    receipt.net_usage if receipt else None,
                    after.updated_at,
                    after.broadcast_at,
                    after.finished_at,
                    before.transfer_id,
                    before.stage.value,
                    before.attempt.number if before.attempt else 0,
                    before.version,
                ),
            )
            if cur.rowcount != 1:
                raise StaleTransfer(f"{before.transfer_id} changed since it was read")
            await book(cur, step.movement)
            await self._outbox(cur, step.events, self._origin)

    async def mark_request_sent(self, transfer: OutgoingTransfer, at: datetime) -> None:
        await self._execute(
            "UPDATE outgoing_transfers SET request_sent_at = %s"
            " WHERE transfer_id = %s AND attempt = %s",
            (at, transfer.transfer_id, transfer.attempt.number if transfer.attempt else 0),
        )

    async def request_sent_at(self, transfer_id: str) -> datetime | None:
        row = await self._fetchone(
            "SELECT request_sent_at FROM outgoing_transfers WHERE transfer_id = %s",
            (transfer_id,),
        )
        return None if row is None else row[0]

    # --- the signer's answers ---------------------------------------------------------------

    async def record_answer(self, answer: SigningAnswerRow) -> None:
        await self._execute(
            "INSERT INTO signing_answers (request_id, txid, signature, refused, message)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (request_id) DO NOTHING",
            (answer.request_id, answer.txid, answer.signature, answer.refused, answer.message),
        )

    async def answer(self, request_id: str) -> SigningAnswerRow | None:
        row = await self._fetchone(
            "SELECT request_id, txid, signature, refused, message FROM signing_answers"
            " WHERE request_id = %s",
            (request_id,),
        )
        return None if row is None else SigningAnswerRow(*row)

    # --- the outbox -------------------------------------------------------------------------

    async def unpublished(self, limit: int) -> builtins.list[tuple[int, dict[str, Any]]]:
        rows = await self._fetchall(
            "SELECT seq, payload FROM money_out_outbox WHERE origin = %s AND published_at IS NULL"
            " ORDER BY seq LIMIT %s",
            (self._origin, limit),
        )
        return [(int(seq), payload) for seq, payload in rows]

    async def mark_published(self, seqs: Sequence[int]) -> None:
        await self._execute(
            "UPDATE money_out_outbox SET published_at = now() WHERE seq = ANY(%s)", (list(seqs),)
        )

    # --- helpers ----------------------------------------------------------------------------

    async def _by_key(
        self, cur: Any, transfer: OutgoingTransfer, key: str
    ) -> tuple[OutgoingTransfer, str] | None:
        await cur.execute(
            f"{_SELECT.replace(' FROM', ', request_fingerprint FROM')}"
            " WHERE merchant_id = %s AND kind = %s AND idempotency_key = %s",
            (transfer.merchant_id, transfer.kind.value, key),
        )
        row = await cur.fetchone()
        return None if row is None else (_transfer(row[:-1]), row[-1])

    async def _refund_context(self, cur: Any, merchant_id: str, invoice_id: str) -> RefundContext:
        await cur.execute(
            "SELECT (SELECT gross_amount FROM settlements"
            "        WHERE invoice_id = %(invoice)s AND merchant_id = %(merchant)s"
            "        AND status <> 'reversed'),"
            " (SELECT amount FROM invoice_summaries"
            "        WHERE invoice_id = %(invoice)s AND merchant_id = %(merchant)s),"
            " (SELECT coalesce(sum(amount), 0) FROM outgoing_transfers"
            "        WHERE invoice_id = %(invoice)s AND kind = 'refund' AND stage <> 'failed'"
            "        AND source = 'balance'),"
            " (SELECT coalesce(sum(amount), 0) FROM outgoing_transfers"
            "        WHERE invoice_id = %(invoice)s AND kind = 'refund' AND stage <> 'failed'"
            "        AND source = 'received'),"
            " (SELECT amount_confirmed FROM invoice_summaries"
            "        WHERE invoice_id = %(invoice)s AND merchant_id = %(merchant)s),"
            " (SELECT status FROM invoice_summaries"
            "        WHERE invoice_id = %(invoice)s AND merchant_id = %(merchant)s)",
            {"invoice": invoice_id, "merchant": merchant_id},
        )
        gross, amount, refunded, refunded_received, confirmed, status = await cur.fetchone()
        await cur.execute(
            "SELECT payload -> 'data' ->> 'from_address' FROM event_store"
            " WHERE event_type = 'PaymentDetected'"
            " AND payload -> 'data' ->> 'invoice_id' = %s AND merchant_id = %s"
            " ORDER BY occurred_at DESC LIMIT 50",
            (invoice_id, merchant_id),
        )
        senders = tuple(dict.fromkeys(row[0] for row in await cur.fetchall()))
        return RefundContext(
            settled_gross=None if gross is None else int(gross),
            invoice_amount=None if amount is None else int(amount),
            refunded=int(refunded),
            senders=senders,
            confirmed=int(confirmed or 0),
            status=status,
            refunded_received=int(refunded_received),
        )

    @staticmethod
    async def _outbox(cur: Any, events: Sequence[DomainEvent], origin: str) -> None:
        for event in events:
            await cur.execute(
                "INSERT INTO money_out_outbox (origin, event_id, payload) VALUES (%s, %s, %s)"
                " ON CONFLICT (event_id) DO NOTHING",
                (origin, str(event.event_id), event.model_dump_json()),
            )


def _transfer(row: Sequence[Any]) -> OutgoingTransfer:
    values = dict(zip(_COLUMNS, row, strict=True))
    attempt = None
    if values["attempt"] and values["txid"]:
        attempt = Attempt(
            number=values["attempt"],
            txid=values["txid"],
            raw_data=values["raw_data"] or {},
            raw_data_hex=values["raw_data_hex"] or "",
            expiration_ms=int(values["expiration_ms"] or 0),
            signature=values["signature"],
        )
    receipt = None
    if values["block_number"] is not None:
        receipt = Receipt(
            block_number=int(values["block_number"]),
            fee_sun=int(values["fee_sun"] or 0),
            energy_usage=int(values["energy_usage"] or 0),
            net_usage=int(values["net_usage"] or 0),
            succeeded=values["stage"] != Stage.FAILED.value,
            result="SUCCESS" if values["stage"] != Stage.FAILED.value else "FAILED",
        )
    return OutgoingTransfer(
        transfer_id=values["transfer_id"],
        kind=TransferKind(values["kind"]),
        merchant_id=values["merchant_id"],
        amount=int(values["amount"]),
        to_address=values["to_address"],
        stage=Stage(values["stage"]),
        created_at=values["created_at"],
        updated_at=values["updated_at"],
        approval=values["approval"],
        network_fee_payer=values["network_fee_payer"],
        network_fee_charged=int(values["network_fee_charged"]),
        invoice_id=values["invoice_id"],
        source=values["source"],
        version=int(values["version"]),
        failure_reason=values["failure_reason"],
        approved_by=values["approved_by"],
        approved_at=values["approved_at"],
        attempt=attempt,
        broadcast_accepted=bool(values["broadcast_accepted"]),
        broadcast_at=values["broadcast_at"],
        finished_at=values["finished_at"],
        receipt=receipt,
    )
