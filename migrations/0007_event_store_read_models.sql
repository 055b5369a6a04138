-- The audit store of every domain event, and the invoice read model the merchant lists and
-- dashboards are served from. Both are written by the projection agent (agents/projections.py)
-- from crypto-checkout.domain-events, one transaction per event, idempotently: a redelivered
-- event finds its row and changes nothing.

-- Every domain event exactly as published (payload), with its envelope in columns to query by.
CREATE TABLE event_store (
    event_id           uuid        PRIMARY KEY,
    event_type         text        NOT NULL,
    schema_version     integer     NOT NULL,
    aggregate_type     text        NOT NULL,
    aggregate_id       text        NOT NULL,
    aggregate_version  integer     NOT NULL CHECK (aggregate_version >= 1),
    merchant_id        text        NOT NULL,
    occurred_at        timestamptz NOT NULL,
    causation_id       text        NOT NULL,
    payload            jsonb       NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    -- Where the event was read from; NULL when it was recorded from elsewhere (a replay tool).
    kafka_partition    integer,
    kafka_offset       bigint,
    -- One event per version of an aggregate. Event ids are derived from the version and the
    -- causing command, so a second, different event at a taken version means the aggregate's
    -- history forked (e.g. its table lost a write and decided another command on the old
    -- state). The insert then fails and the event goes to the dead-letter topic: an operator
    -- must reconcile that aggregate before replaying it.
    CONSTRAINT event_store_aggregate_version_key
        UNIQUE (aggregate_type, aggregate_id, aggregate_version)
);

-- A merchant's events in a time window, in the order webhook replays resend them:
-- WHERE merchant_id = ? AND occurred_at BETWEEN ? AND ? ORDER BY occurred_at, aggregate_id,
-- aggregate_version (served from the index alone, no sort).
CREATE INDEX event_store_merchant_time_idx
    ON event_store (merchant_id, occurred_at, aggregate_id, aggregate_version);

-- Append-only for real, not only by convention: an audit store anyone can edit proves nothing.
-- The trigger refuses UPDATE, DELETE and TRUNCATE for every role, the table's owner included.
-- Should an erasure ever be legally required, do it in a reviewed migration that disables the
-- trigger, deletes, and enables it again in the same transaction.
CREATE FUNCTION event_store_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'event_store is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'domain events are never changed or removed; record a new event instead';
END
$$;

CREATE TRIGGER event_store_append_only
    BEFORE UPDATE OR DELETE ON event_store
    FOR EACH ROW EXECUTE FUNCTION event_store_refuse_change();

CREATE TRIGGER event_store_no_truncate
    BEFORE TRUNCATE ON event_store
    FOR EACH STATEMENT EXECUTE FUNCTION event_store_refuse_change();

-- One row per invoice: where it stands after the latest event projected (aggregate_version).
-- Eventually consistent: it lags the invoice agent's table by the projection, usually well
-- under a second. Amounts are micro-USDT.
--
-- Status and amounts are replaced only by an event of a higher aggregate_version, so a
-- redelivered or late event never rolls the row back. The facts an event states once (what
-- InvoiceCreated says, paid_at, expired_at, cancelled_at) are filled in when still missing,
-- whatever the order. That is why the creation columns are nullable: should a later event be
-- projected before InvoiceCreated (e.g. InvoiceCreated was dead-lettered and is replayed after
-- the fix), the row exists without them, and the lists leave it out until they arrive.
CREATE TABLE invoice_summaries (
    invoice_id              text          PRIMARY KEY,
    merchant_id             text          NOT NULL,
    status                  text          NOT NULL
                            CHECK (status IN ('pending', 'confirming', 'paid', 'expired',
                                              'cancelled')),
    payment_exception       text          CHECK (payment_exception IN ('underpaid', 'overpaid',
                                                                       'paid_late')),
    amount                  bigint        NOT NULL CHECK (amount > 0),
    amount_received         bigint        NOT NULL CHECK (amount_received >= 0),
    amount_confirmed        bigint        NOT NULL CHECK (amount_confirmed >= 0),
    amount_due              bigint        NOT NULL CHECK (amount_due >= 0),
    order_id                text,
    description             text,
    metadata                jsonb,
    deposit_address         text,
    required_confirmations  integer,
    fee_percentage          numeric(5, 2),
    created_at              timestamptz,
    expires_at              timestamptz,
    paid_at                 timestamptz,
    cancelled_at            timestamptz,
    cancellation_reason     text,
    expired_at              timestamptz,
    -- When the invoice last changed: occurred_at of the event at aggregate_version.
    updated_at              timestamptz   NOT NULL,
    aggregate_version       integer       NOT NULL CHECK (aggregate_version >= 1)
);

-- GET /api/v1/invoices: a merchant's invoices, newest first, keyset-paginated on
-- (created_at, invoice_id); the second index serves the status filter.
CREATE INDEX invoice_summaries_merchant_created_idx
    ON invoice_summaries (merchant_id, created_at DESC, invoice_id DESC);
CREATE INDEX invoice_summaries_merchant_status_created_idx
    ON invoice_summaries (merchant_id, status, created_at DESC, invoice_id DESC);
-- Finding a merchant's invoices for one of their orders.
CREATE INDEX invoice_summaries_merchant_order_idx
    ON invoice_summaries (merchant_id, order_id)
    WHERE order_id IS NOT NULL;
