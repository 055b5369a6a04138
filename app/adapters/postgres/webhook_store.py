"""Webhook endpoints, deliveries and attempts in PostgreSQL (migrations/0008_webhooks.sql).

The store only reads and writes rows; what a failed attempt means (retry when, give up, disable
the endpoint) is decided by the dispatcher (app/adapters/webhooks/dispatcher.py) with the retry
schedule of app/adapters/webhooks/schedule.py. Every merchant-facing read takes the merchant id, so
one merchant never sees another's endpoint or delivery: a foreign id is simply not found.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from psycopg2.extras import Json

from app.adapters.postgres.pool import Connections, SqlStore, fetch_all
from app.adapters.webhooks.secrets import (
    EncryptedSecret,
    SecretDecryptionError,
    SecretKeyring,
    new_signing_secret,
)
from app.domain.webhooks import (
    Attempt,
    Delivery,
    EndpointSettings,
    Notification,
    ReplayJob,
    WebhookEndpoint,
    replay_delivery_id,
)
from app.services.ports import DeliveryQuery

_ENDPOINT_COLUMNS = """
    endpoint_id, merchant_id, url, description, event_types, enabled, disabled_reason,
    disabled_at, failing_since, previous_secret_expires_at, version, created_at, updated_at
"""
_DELIVERY_COLUMNS = """
    delivery_id, seq, endpoint_id, origin, redelivery_of, event_id, event_type, aggregate_id,
    status, attempts, next_attempt_at, last_error, created_at, completed_at
"""


_REPLAY_COLUMNS = """
    replay_id, endpoint_id, merchant_id, range_start, range_end, expected, queued, status,
    created_at, completed_at
"""


def new_endpoint_id() -> str:
    return f"we_{secrets.token_hex(12)}"


def endpoint_from_row(row: Sequence[Any]) -> WebhookEndpoint:
    values = list(row)
    values[4] = tuple(values[4])  # event_types: a PostgreSQL array comes back as a list
    return WebhookEndpoint(*values)


def delivery_from_row(row: Sequence[Any]) -> Delivery:
    values = list(row)
    values[5] = str(values[5])  # event_id: uuid → its canonical text
    return Delivery(*values)


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery a dispatcher took for one attempt, with what it needs to send it."""

    delivery_id: str
    endpoint_id: str
    merchant_id: str
    aggregate_id: str
    attempt: int
    event: dict[str, Any]
    url: str
    secrets: tuple[str, ...]  # current first, then the previous one during rotation
    origin: str
    redelivery_of: str | None
    # Why the signing secrets could not be opened, when they could not (then ``secrets`` is ()).
    secret_error: str | None = None
    # The W3C traceparent of the work that queued it: its attempts join that trace.
    trace_context: str | None = None


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"d{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The delivery sequence a cursor points after; ValueError when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("d"):
            raise ValueError
        return int(text[1:])
    except (ValueError, UnicodeDecodeError):
        raise ValueError("cursor is not one returned by this API") from None


_NOTE_SUCCESS = (
    "UPDATE webhook_endpoints SET failing_since = NULL"
    " WHERE endpoint_id = %s AND failing_since IS NOT NULL"
)


@dataclass(frozen=True)
class FailedDelivery:
    delivery_id: str
    endpoint_id: str
    merchant_id: str
    event: dict[str, Any]
    failed_at: datetime | None
    endpoint_enabled: bool
    endpoint_deleted: bool


class PostgresWebhookStore(SqlStore):
    def __init__(self, pool: Connections, keyring: SecretKeyring, app_id: str) -> None:
        super().__init__(pool)
        self._keyring = keyring
        self._app_id = app_id

    # --- endpoints --------------------------------------------------------------------------

    async def create_endpoint(
        self, merchant_id: str, settings: EndpointSettings
    ) -> tuple[WebhookEndpoint, str]:
        """A new endpoint and its signing secret, in clear this once (only the ciphertext stays)."""
        url, description, enabled = settings.url, settings.description, settings.enabled
        event_types = settings.event_types
        endpoint_id = new_endpoint_id()
        secret = new_signing_secret()
        sealed = self._seal(endpoint_id, secret)
        row = await self._fetchone(
            f"""
            INSERT INTO webhook_endpoints (endpoint_id, app_id, merchant_id, url, description,
                event_types, enabled, disabled_reason, disabled_at, secret_key_id, secret_nonce,
                secret_ciphertext)
            VALUES (%s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN NULL ELSE 'merchant' END,
                CASE WHEN %s THEN NULL ELSE now() END, %s, %s, %s)
            RETURNING {_ENDPOINT_COLUMNS}
            """,
            (endpoint_id, self._app_id, merchant_id, url, description, list(event_types), enabled,
             enabled, enabled, sealed.key_id, sealed.nonce, sealed.ciphertext),
        )  # fmt: skip
        assert row is not None
        return endpoint_from_row(row), secret

    async def endpoints(self, merchant_id: str) -> list[WebhookEndpoint]:
        rows = await self._fetchall(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints"
            " WHERE merchant_id = %s AND deleted_at IS NULL ORDER BY created_at, endpoint_id",
            (merchant_id,),
        )
        return [endpoint_from_row(row) for row in rows]

    async def endpoint(self, merchant_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        row = await self._fetchone(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints"
            " WHERE endpoint_id = %s AND merchant_id = %s AND deleted_at IS NULL",
            (endpoint_id, merchant_id),
        )
        return None if row is None else endpoint_from_row(row)

    async def update_endpoint(
        self, merchant_id: str, endpoint_id: str, changes: Mapping[str, Any]
    ) -> WebhookEndpoint | None:
        """Apply ``url``, ``description``, ``event_types`` and ``enabled`` changes.

        Enabling clears the failure record (the merchant says the receiver is fixed); disabling
        over the API is recorded as the merchant's choice.
        """
        assignments = ["updated_at = now()"]
        values: list[Any] = []
        for column in ("url", "description", "event_types"):
            if column in changes:
                assignments.append(f"{column} = %s")
                values.append(list(changes[column]) if column == "event_types" else changes[column])
        if "enabled" in changes:
            if changes["enabled"]:
                assignments.append(
                    "disabled_reason = NULL, disabled_at = NULL, failing_since = NULL,"
                    " enabled = true"
                )
            else:
                assignments.append(
                    "disabled_reason = CASE WHEN enabled THEN 'merchant' ELSE disabled_reason END,"
                    " disabled_at = CASE WHEN enabled THEN now() ELSE disabled_at END,"
                    " enabled = false"
                )
        row = await self._fetchone(
            f"UPDATE webhook_endpoints SET {', '.join(assignments)}"
            " WHERE endpoint_id = %s AND merchant_id = %s AND deleted_at IS NULL"
            f" RETURNING {_ENDPOINT_COLUMNS}",
            (*values, endpoint_id, merchant_id),
        )
        return None if row is None else endpoint_from_row(row)

    async def delete_endpoint(self, merchant_id: str, endpoint_id: str) -> bool:
        """Stop sending to the endpoint; its pending deliveries fail, its log stays readable."""
        async with self._transaction() as cur:
            await cur.execute(
                "UPDATE webhook_endpoints SET deleted_at = now(), enabled = false,"
                " updated_at = now()"
                " WHERE endpoint_id = %s AND merchant_id = %s AND deleted_at IS NULL",
                (endpoint_id, merchant_id),
            )
            deleted = bool(cur.rowcount)
            if deleted:
                await cur.execute(
                    "UPDATE webhook_deliveries SET status = 'failed', completed_at = now(),"
                    " last_error = 'endpoint deleted', leased_until = NULL"
                    " WHERE endpoint_id = %s AND status = 'pending'",
                    (endpoint_id,),
                )
        return deleted

    async def rotate_secret(
        self, merchant_id: str, endpoint_id: str, grace: timedelta
    ) -> tuple[WebhookEndpoint, str] | None:
        """A new signing secret; the current one keeps signing too until ``grace`` has passed."""
        secret = new_signing_secret()
        sealed = self._seal(endpoint_id, secret)
        row = await self._fetchone(
            f"""
            UPDATE webhook_endpoints SET
                previous_secret_key_id = secret_key_id,
                previous_secret_nonce = secret_nonce,
                previous_secret_ciphertext = secret_ciphertext,
                previous_secret_expires_at = now() + make_interval(secs => %s),
                secret_key_id = %s, secret_nonce = %s, secret_ciphertext = %s,
                updated_at = now()
            WHERE endpoint_id = %s AND merchant_id = %s AND deleted_at IS NULL
            RETURNING {_ENDPOINT_COLUMNS}
            """,
            (grace.total_seconds(), sealed.key_id, sealed.nonce, sealed.ciphertext, endpoint_id,
             merchant_id),
        )  # fmt: skip
        return None if row is None else (endpoint_from_row(row), secret)

    async def subscribers(self, merchant_id: str, event_type: str) -> list[WebhookEndpoint]:
        """The merchant's enabled endpoints that want this event type."""
        endpoints = await self.enabled_endpoints(merchant_id)
        return [endpoint for endpoint in endpoints if endpoint.wants(event_type)]

    async def enabled_endpoints(self, merchant_id: str) -> list[WebhookEndpoint]:
        """Every enabled endpoint of the merchant, whatever it subscribes to."""
        rows = await self._fetchall(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints"
            " WHERE merchant_id = %s AND enabled AND deleted_at IS NULL ORDER BY endpoint_id",
            (merchant_id,),
        )
        return [endpoint_from_row(row) for row in rows]

    async def note_success(self, endpoint_id: str) -> None:
        """End the endpoint's run of failures (``record_attempt`` does it for a success)."""
        await self._execute(_NOTE_SUCCESS, (endpoint_id,))

    async def note_failure(self, endpoint_id: str, failed_at: datetime) -> datetime:
        """Record a failed attempt; returns when the endpoint's current run of failures began."""
        row = await self._fetchone(
            "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, %s)"
            " WHERE endpoint_id = %s RETURNING failing_since",
            (failed_at, endpoint_id),
        )
        if row is None:
            raise LookupError(f"webhook endpoint {endpoint_id} does not exist")
        failing_since: datetime = row[0]
        return failing_since

    async def disable_failing(self, endpoint_id: str) -> WebhookEndpoint | None:
        """Disable an endpoint that failed too long; None when it already is (or was deleted)."""
        row = await self._fetchone(
            f"""
            UPDATE webhook_endpoints SET enabled = false, disabled_reason = 'failing',
                disabled_at = now(), version = version + 1, updated_at = now()
            WHERE endpoint_id = %s AND enabled AND deleted_at IS NULL
            RETURNING {_ENDPOINT_COLUMNS}
            """,
            (endpoint_id,),
        )
        return None if row is None else endpoint_from_row(row)

    # --- deliveries -------------------------------------------------------------------------

    async def enqueue(self, notification: Notification) -> bool:
        """Queue a delivery; False when it already is (a redelivered notification) or its endpoint
        was deleted meanwhile (nothing would ever send it)."""
        event = notification.event
        row = await self._fetchone(
            """
            INSERT INTO webhook_deliveries (delivery_id, endpoint_id, merchant_id, origin,
                redelivery_of, event_id, event_type, aggregate_id, event, trace_context)
            SELECT %s, endpoint_id, merchant_id, %s, %s, %s, %s, %s, %s, %s
            FROM webhook_endpoints
            WHERE endpoint_id = %s AND merchant_id = %s AND deleted_at IS NULL
            ON CONFLICT (delivery_id) DO NOTHING
            RETURNING seq
            """,
            (notification.delivery_id, notification.origin, notification.redelivery_of,
             event["event_id"], event["event_type"], event["aggregate_id"], Json(event),
             notification.traceparent, notification.endpoint_id, notification.merchant_id),
        )  # fmt: skip
        return row is not None

    async def failed_for_retry(
        self,
        *,
        endpoint_id: str | None,
        merchant_id: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
    ) -> list[FailedDelivery]:
        """Deliveries of this platform that failed for good and were not sent again since (the
        last of each chain of redeliveries), oldest first, with their endpoint's state."""
        rows = await fetch_all(
            self._pool,
            """
            SELECT d.delivery_id, d.endpoint_id, d.merchant_id, d.event, d.completed_at,
                   e.enabled, e.deleted_at IS NOT NULL
            FROM webhook_deliveries d
            JOIN webhook_endpoints e ON e.endpoint_id = d.endpoint_id
            WHERE d.status = 'failed' AND e.app_id = %(app)s
              AND (%(endpoint)s::text IS NULL OR d.endpoint_id = %(endpoint)s::text)
              AND (%(merchant)s::text IS NULL OR d.merchant_id = %(merchant)s::text)
              AND (%(since)s::timestamptz IS NULL OR d.completed_at >= %(since)s::timestamptz)
              AND (%(until)s::timestamptz IS NULL OR d.completed_at < %(until)s::timestamptz)
              AND NOT EXISTS (
                  SELECT 1 FROM webhook_deliveries r WHERE r.redelivery_of = d.delivery_id)
            ORDER BY d.seq
            LIMIT %(limit)s
            """,
            {
                "app": self._app_id,
                "endpoint": endpoint_id,
                "merchant": merchant_id,
                "since": since,
                "until": until,
                "limit": limit,
            },
        )
        return [
            FailedDelivery(
                delivery_id=row[0],
                endpoint_id=row[1],
                merchant_id=row[2],
                event=dict(row[3]),
                failed_at=row[4],
                endpoint_enabled=bool(row[5]),
                endpoint_deleted=bool(row[6]),
            )
            for row in rows
        ]

    async def enqueue_batch(self, notifications: Sequence[Notification]) -> set[str]:
        """Queue many deliveries in one statement, in the order given; the ids queued now.

        Like ``enqueue`` for each: a delivery queued already, or whose endpoint was deleted, is
        left out. The rows are inserted in the order of ``notifications`` (``seq``, which keeps
        an invoice's deliveries in order, follows it: WITH ORDINALITY … ORDER BY).
        """
        unique: list[Notification] = []
        seen: set[str] = set()
        for notification in notifications:  # a notification redelivered within the batch
            if notification.delivery_id not in seen:
                seen.add(notification.delivery_id)
                unique.append(notification)
        if not unique:
            return set()
        columns: list[list[Any]] = [[] for _ in range(10)]
        for n in unique:
            event = n.event
            row = (n.delivery_id, n.origin, n.redelivery_of, str(event["event_id"]),
                   str(event["event_type"]), str(event["aggregate_id"]),
                   orjson.dumps(event).decode(), n.endpoint_id, n.merchant_id,
                   n.traceparent)  # fmt: skip
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        rows = await self._fetchall(
            """
            INSERT INTO webhook_deliveries (delivery_id, endpoint_id, merchant_id, origin,
                redelivery_of, event_id, event_type, aggregate_id, event, trace_context)
            SELECT v.delivery_id, e.endpoint_id, e.merchant_id, v.origin, v.redelivery_of,
                v.event_id::uuid, v.event_type, v.aggregate_id, v.event::jsonb, v.trace_context
            FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                        %s::text[], %s::text[], %s::text[], %s::text[])
                WITH ORDINALITY AS v(delivery_id, origin, redelivery_of, event_id, event_type,
                    aggregate_id, event, endpoint_id, merchant_id, trace_context, place)
            JOIN webhook_endpoints e ON e.endpoint_id = v.endpoint_id
                AND e.merchant_id = v.merchant_id AND e.deleted_at IS NULL
            ORDER BY v.place
            ON CONFLICT (delivery_id) DO NOTHING
            RETURNING delivery_id
            """,
            columns,
        )
        return {row[0] for row in rows}

    async def claim_due(
        self, limit: int, lease: float, busy_endpoints: Sequence[str], per_endpoint: int
    ) -> list[ClaimedDelivery]:
        """Take up to ``limit`` due deliveries for one attempt each, ``per_endpoint`` at most.

        A delivery is due when its time has come, its endpoint is enabled, and no earlier
        delivery of the same endpoint and aggregate is still pending (per-invoice order). The
        lease keeps other dispatchers off it while the attempt runs; if this worker dies, the
        lease runs out and another worker makes the attempt. Oldest first, but one endpoint's
        backlog cannot fill the whole batch: the others' deliveries come in the same claim.
        """
        if limit <= 0:
            return []
        rows = await self._fetchall(
            """
            WITH candidates AS (
                SELECT d.delivery_id, d.endpoint_id, d.next_attempt_at, d.seq
                FROM webhook_deliveries d
                JOIN webhook_endpoints e ON e.endpoint_id = d.endpoint_id
                WHERE d.status = 'pending'
                  AND d.next_attempt_at <= now()
                  AND (d.leased_until IS NULL OR d.leased_until < now())
                  AND e.app_id = %s AND e.enabled AND e.deleted_at IS NULL
                  AND NOT (d.endpoint_id = ANY(%s))
                  AND NOT EXISTS (
                      SELECT 1 FROM webhook_deliveries earlier
                      WHERE earlier.endpoint_id = d.endpoint_id
                        AND earlier.aggregate_id = d.aggregate_id
                        AND earlier.status = 'pending'
                        AND earlier.seq < d.seq)
                ORDER BY d.next_attempt_at, d.seq
                LIMIT 1000
            ), fair AS (
                SELECT delivery_id, next_attempt_at, seq, row_number() OVER (
                    PARTITION BY endpoint_id ORDER BY next_attempt_at, seq) AS place
                FROM candidates
            ), due AS (
                SELECT d.delivery_id
                FROM webhook_deliveries d JOIN fair USING (delivery_id)
                WHERE fair.place <= %s
                  AND d.status = 'pending'
                  AND (d.leased_until IS NULL OR d.leased_until < now())
                ORDER BY fair.next_attempt_at, fair.seq
                LIMIT %s
                FOR UPDATE OF d SKIP LOCKED
            )
            UPDATE webhook_deliveries d
            SET leased_until = now() + make_interval(secs => %s), attempts = d.attempts + 1
            FROM due, webhook_endpoints e
            WHERE d.delivery_id = due.delivery_id AND e.endpoint_id = d.endpoint_id
            RETURNING d.delivery_id, d.endpoint_id, d.merchant_id, d.aggregate_id, d.attempts,
                d.event, e.url, e.secret_key_id, e.secret_nonce, e.secret_ciphertext,
                e.previous_secret_key_id, e.previous_secret_nonce, e.previous_secret_ciphertext,
                e.previous_secret_expires_at > now(), d.origin, d.redelivery_of, d.trace_context,
                d.seq
            """,
            (self._app_id, list(busy_endpoints), per_endpoint, limit, lease),
        )
        rows.sort(key=lambda row: row[-1])
        return [self._claimed(row) for row in rows]

    async def release(self, delivery_ids: Sequence[str]) -> None:
        """Give back claimed deliveries that will not be attempted now (the claim is undone)."""
        if delivery_ids:
            await self._execute(
                "UPDATE webhook_deliveries SET leased_until = NULL, attempts = attempts - 1"
                " WHERE delivery_id = ANY(%s) AND status = 'pending'",
                (list(delivery_ids),),
            )

    def _claimed(self, row: Sequence[Any]) -> ClaimedDelivery:
        (delivery_id, endpoint_id, merchant_id, aggregate_id, attempt, event, url, key_id, nonce,
         ciphertext, old_key_id, old_nonce, old_ciphertext, old_valid, origin, redelivery_of,
         trace_context, _seq) = row  # fmt: skip
        # A secret this worker cannot open (a key missing from WEBHOOK_SECRET_KEYS) spoils only
        # its own delivery: the attempt is recorded as failed with the reason, not lost.
        signing: list[str] = []
        secret_error = None
        try:
            signing.append(self._open(endpoint_id, key_id, nonce, ciphertext))
            if old_valid and old_key_id is not None:
                signing.append(self._open(endpoint_id, old_key_id, old_nonce, old_ciphertext))
        except SecretDecryptionError as exc:
            signing, secret_error = [], str(exc)
        return ClaimedDelivery(
            delivery_id=delivery_id,
            endpoint_id=endpoint_id,
            merchant_id=merchant_id,
            aggregate_id=aggregate_id,
            attempt=attempt,
            event=event,
            url=url,
            secrets=tuple(signing),
            origin=origin,
            redelivery_of=redelivery_of,
            secret_error=secret_error,
            trace_context=trace_context,
        )

    async def record_attempt(
        self,
        claimed: ClaimedDelivery,
        attempt: Attempt,
        *,
        succeeded: bool,
        retry_in: float | None,
    ) -> str:
        """Log the attempt and settle the delivery: succeeded, retried later, or failed for good.

        A success also ends the endpoint's run of failures (``note_success``). All of it goes to
        PostgreSQL as one query string: one round trip and, as every statement of one simple
        query, one implicit transaction — the dispatcher records every attempt, so this is on
        the path of each delivery (it was four round trips, and a fifth for the success).
        Returns the delivery's new status.
        """
        if succeeded:
            status, retry_in = "succeeded", None
        else:
            status = "pending" if retry_in is not None else "failed"
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            statements = [
                cur.mogrify(
                    "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, latency_ms,"
                    " status_code, error, response_excerpt) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (delivery_id, attempt) DO NOTHING",
                    (
                        claimed.delivery_id,
                        attempt.attempt,
                        attempt.started_at,
                        attempt.latency_ms,
                        attempt.status_code,
                        attempt.error,
                        attempt.response_excerpt,
                    ),
                ),
                cur.mogrify(
                    """
                    UPDATE webhook_deliveries SET
                        status = %s,
                        leased_until = NULL,
                        last_error = %s,
                        next_attempt_at = CASE WHEN %s::float8 IS NULL THEN next_attempt_at
                            ELSE now() + make_interval(secs => %s::float8) END,
                        completed_at = CASE WHEN %s = 'pending' THEN NULL ELSE now() END
                    WHERE delivery_id = %s
                    """,
                    (status, attempt.error, retry_in, retry_in, status, claimed.delivery_id),
                ),
            ]
            if succeeded:
                statements.append(cur.mogrify(_NOTE_SUCCESS, (claimed.endpoint_id,)))
            await cur.execute(b";\n".join(statements).decode())
        return status

    async def deliveries(
        self, merchant_id: str, endpoint_id: str | None, query: DeliveryQuery
    ) -> tuple[list[Delivery], bool]:
        """A delivery log (one endpoint's, or all the merchant's endpoints' when None), newest
        first; and whether there is more."""
        status, limit, after_seq = query.status, query.limit, query.after_seq
        conditions = ["merchant_id = %s"]
        values: list[Any] = [merchant_id]
        if endpoint_id is not None:
            conditions.append("endpoint_id = %s")
            values.append(endpoint_id)
        if query.aggregate_id is not None:
            conditions.append("aggregate_id = %s")
            values.append(query.aggregate_id)
        if status is not None:
            conditions.append("status = %s")
            values.append(status)
        if after_seq is not None:
            conditions.append("seq < %s")
            values.append(after_seq)
        rows = await self._fetchall(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE {' AND '.join(conditions)}"
            " ORDER BY seq DESC LIMIT %s",
            (*values, limit + 1),
        )
        return [delivery_from_row(row) for row in rows[:limit]], len(rows) > limit

    async def delivery(
        self, merchant_id: str, delivery_id: str
    ) -> tuple[Delivery, dict[str, Any], list[Attempt]] | None:
        """One delivery with its event and every attempt, oldest first."""
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                f"SELECT {_DELIVERY_COLUMNS}, event FROM webhook_deliveries"
                " WHERE delivery_id = %s AND merchant_id = %s",
                (delivery_id, merchant_id),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            await cur.execute(
                "SELECT attempt, started_at, latency_ms, status_code, error, response_excerpt"
                " FROM webhook_attempts WHERE delivery_id = %s ORDER BY attempt",
                (delivery_id,),
            )
            attempts = [Attempt(*values) for values in await cur.fetchall()]
        return delivery_from_row(row[:-1]), row[-1], attempts

    # --- replays (app/adapters/webhooks/replays.py) ----------------------------------------

    async def event_counts(
        self, merchant_id: str, start: datetime, end: datetime
    ) -> dict[str, int]:
        """How many of the merchant's events of each type [start, end) holds (from the index)."""
        rows = await self._fetchall(
            "SELECT event_type, count(*) FROM event_store"
            " WHERE merchant_id = %s AND occurred_at >= %s AND occurred_at < %s"
            " GROUP BY event_type",
            (merchant_id, start, end),
        )
        return {str(row[0]): int(row[1]) for row in rows}

    async def add_replay(self, job: ReplayJob) -> ReplayJob:
        row = await self._fetchone(
            f"""
            INSERT INTO webhook_replays (replay_id, endpoint_id, merchant_id, range_start,
                range_end, expected)
            VALUES (%s, %s, %s, %s, %s, %s)
            RETURNING {_REPLAY_COLUMNS}
            """,
            (job.replay_id, job.endpoint_id, job.merchant_id, job.start, job.end, job.expected),
        )
        assert row is not None
        return ReplayJob(*row)

    async def replay_job(self, merchant_id: str, replay_id: str) -> ReplayJob | None:
        row = await self._fetchone(
            f"SELECT {_REPLAY_COLUMNS} FROM webhook_replays"
            " WHERE replay_id = %s AND merchant_id = %s",
            (replay_id, merchant_id),
        )
        return None if row is None else ReplayJob(*row)

    async def claim_replay(self, lease: float) -> ReplayJob | None:
        """The oldest open replay of this platform nobody works on; leased for ``lease`` s."""
        row = await self._fetchone(
            f"""
            UPDATE webhook_replays SET leased_until = now() + %s
            WHERE replay_id = (
                SELECT r.replay_id FROM webhook_replays r
                JOIN webhook_endpoints e ON e.endpoint_id = r.endpoint_id
                WHERE r.status = 'queued' AND e.app_id = %s
                  AND (r.leased_until IS NULL OR r.leased_until < now())
                ORDER BY r.created_at LIMIT 1
                FOR UPDATE OF r SKIP LOCKED
            )
            RETURNING {_REPLAY_COLUMNS}
            """,
            (timedelta(seconds=lease), self._app_id),
        )
        return None if row is None else ReplayJob(*row)

    async def queue_replay_batch(
        self, job: ReplayJob, endpoint: WebhookEndpoint, limit: int, lease: float
    ) -> tuple[list[Notification], ReplayJob]:
        """The next ``limit`` events of the replay, queued as deliveries with the cursor moved
        past them, in one transaction; the job as it now stands."""
        async with self._transaction() as cur:
            # Locked, and re-checked under the lock: another worker may have finished or
            # cancelled it, or the endpoint been disabled, since this one last looked.
            await cur.execute(
                "SELECT r.after_occurred_at, r.after_aggregate_id, r.after_aggregate_version,"
                " e.enabled AND e.deleted_at IS NULL"
                " FROM webhook_replays r JOIN webhook_endpoints e USING (endpoint_id)"
                " WHERE r.replay_id = %s AND r.status = 'queued' FOR UPDATE OF r",
                (job.replay_id,),
            )
            cursor = await cur.fetchone()
            if cursor is None or not cursor[3]:
                await cur.execute(
                    "UPDATE webhook_replays SET status = 'cancelled', completed_at = now()"
                    " WHERE replay_id = %s AND status = 'queued'",
                    (job.replay_id,),
                )
                await cur.execute(
                    f"SELECT {_REPLAY_COLUMNS} FROM webhook_replays WHERE replay_id = %s",
                    (job.replay_id,),
                )
                return [], ReplayJob(*(await cur.fetchone()))
            after = (
                (cursor[0], cursor[1], cursor[2])
                if cursor[0] is not None
                else (job.start - timedelta(microseconds=1), "", -1)
            )
            await cur.execute(
                "SELECT occurred_at, aggregate_id, aggregate_version, payload FROM event_store"
                " WHERE merchant_id = %s AND occurred_at < %s"
                "   AND (occurred_at, aggregate_id, aggregate_version) > (%s, %s, %s)"
                "   AND occurred_at >= %s"
                " ORDER BY occurred_at, aggregate_id, aggregate_version LIMIT %s",
                (job.merchant_id, job.end, *after, job.start, limit),
            )
            rows = await cur.fetchall()
            notifications = [
                Notification(
                    delivery_id=replay_delivery_id(job.replay_id, str(row[3]["event_id"])),
                    endpoint_id=endpoint.endpoint_id,
                    merchant_id=job.merchant_id,
                    origin="replay",
                    event=row[3],
                )
                for row in rows
                if endpoint.wants(row[3]["event_type"])
            ]
            queued = 0
            for notification in notifications:
                event = notification.event
                await cur.execute(
                    """
                    INSERT INTO webhook_deliveries (delivery_id, endpoint_id, merchant_id,
                        origin, event_id, event_type, aggregate_id, event)
                    VALUES (%s, %s, %s, 'replay', %s, %s, %s, %s)
                    ON CONFLICT (delivery_id) DO NOTHING
                    """,
                    (notification.delivery_id, notification.endpoint_id,
                     notification.merchant_id, event["event_id"], event["event_type"],
                     event["aggregate_id"], Json(event)),
                )  # fmt: skip
                queued += cur.rowcount
            last = rows[-1] if rows else None
            finished = len(rows) < limit
            await cur.execute(
                f"""
                UPDATE webhook_replays SET
                    queued = queued + %s,
                    after_occurred_at = coalesce(%s, after_occurred_at),
                    after_aggregate_id = coalesce(%s, after_aggregate_id),
                    after_aggregate_version = coalesce(%s, after_aggregate_version),
                    status = CASE WHEN %s THEN 'done' ELSE status END,
                    completed_at = CASE WHEN %s THEN now() ELSE completed_at END,
                    leased_until = now() + %s
                WHERE replay_id = %s
                RETURNING {_REPLAY_COLUMNS}
                """,
                (queued, *(last[:3] if last else (None, None, None)), finished, finished,
                 timedelta(seconds=lease), job.replay_id),
            )  # fmt: skip
            updated = await cur.fetchone()
        return notifications, ReplayJob(*updated)

    async def fail_replay(self, replay_id: str, error: str) -> None:
        await self._execute(
            "UPDATE webhook_replays SET status = 'failed', error = %s, completed_at = now()"
            " WHERE replay_id = %s AND status = 'queued'",
            (error[:500], replay_id),
        )

    async def cancel_replay(self, replay_id: str) -> None:
        await self._execute(
            "UPDATE webhook_replays SET status = 'cancelled', completed_at = now()"
            " WHERE replay_id = %s AND status = 'queued'",
            (replay_id,),
        )

    # --- helpers ----------------------------------------------------------------------------

    def _seal(self, endpoint_id: str, secret: str) -> EncryptedSecret:
        return self._keyring.encrypt(secret, associated_data=endpoint_id.encode())

    def _open(self, endpoint_id: str, key_id: str, nonce: bytes, ciphertext: bytes) -> str:
        return self._keyring.decrypt(
            EncryptedSecret(key_id, bytes(nonce), bytes(ciphertext)),
            associated_data=endpoint_id.encode(),
        )
