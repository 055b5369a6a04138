-- The query side: read models folded from the event store, for the dashboard, the reports and
-- the operators (docs/reports.md). Amounts are micro-USDT; days are UTC days of the events'
-- occurred_at.
--
-- How they are kept: every event the projection agent records in event_store fires
-- read_models_apply(), in the same transaction as the insert, which is the projection's batch.
-- event_store's primary key makes that exactly once per event: a redelivered event is not
-- inserted again (ON CONFLICT DO NOTHING), so its trigger does not fire again, and every counter
-- below can simply be added to. The function reads nothing but the event and these tables
-- (never the clock), so replaying event_store in its insertion order (seq) into empty tables gives
-- the same rows: that is how `checkout rebuild-read-models` rebuilds them. Tables are named
-- without a schema inside the function, so the rebuild folds into fresh copies by putting their
-- schema first in search_path.

-- The insertion order of event_store: the rebuild replays in it, and knows where to catch up.
-- (Adding the column fills existing rows in physical order; no UPDATE trigger fires.)
ALTER TABLE event_store ADD COLUMN seq bigserial;
CREATE UNIQUE INDEX event_store_seq_key ON event_store (seq);

-- Per merchant: volumes, invoices by current status, the time to paid, the balance.
CREATE TABLE merchant_dashboard (
    merchant_id              text        PRIMARY KEY,
    gross_volume             bigint      NOT NULL DEFAULT 0,
    fees                     bigint      NOT NULL DEFAULT 0,
    net_volume               bigint      NOT NULL DEFAULT 0,
    -- Net credited to the merchant's ledger account (SettlementCompleted), less what was paid
    -- out (payouts come with "Money out").
    balance                  bigint      NOT NULL DEFAULT 0,
    settlements              bigint      NOT NULL DEFAULT 0,
    invoices_created         bigint      NOT NULL DEFAULT 0,
    invoices_pending         bigint      NOT NULL DEFAULT 0,
    invoices_confirming      bigint      NOT NULL DEFAULT 0,
    invoices_paid            bigint      NOT NULL DEFAULT 0,
    invoices_expired         bigint      NOT NULL DEFAULT 0,
    invoices_cancelled       bigint      NOT NULL DEFAULT 0,
    invoices_underpaid       bigint      NOT NULL DEFAULT 0,
    invoices_overpaid        bigint      NOT NULL DEFAULT 0,
    invoices_paid_late       bigint      NOT NULL DEFAULT 0,
    -- Average time to paid = ms_to_paid_total / paid_with_time (created → InvoicePaid). Sums
    -- are integers so that they do not depend on the order they were added in (a rebuild
    -- adds them in another order than two workers did).
    ms_to_paid_total         bigint      NOT NULL DEFAULT 0,
    paid_with_time           bigint      NOT NULL DEFAULT 0,
    updated_at               timestamptz NOT NULL
);

-- Per merchant per UTC day.
CREATE TABLE daily_settlement_metrics (
    merchant_id       text    NOT NULL,
    day               date    NOT NULL,
    gross_volume      bigint  NOT NULL DEFAULT 0,
    fees              bigint  NOT NULL DEFAULT 0,
    net_volume        bigint  NOT NULL DEFAULT 0,
    settlements       bigint  NOT NULL DEFAULT 0,
    invoices_created  bigint  NOT NULL DEFAULT 0,
    invoices_paid     bigint  NOT NULL DEFAULT 0,
    invoices_expired  bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (merchant_id, day)
);

-- Per UTC day, for the whole platform: what the chain did to payments.
CREATE TABLE payment_confirmation_stats (
    day                        date   PRIMARY KEY,
    payments_detected          bigint NOT NULL DEFAULT 0,
    payments_confirmed         bigint NOT NULL DEFAULT 0,
    payments_failed            bigint NOT NULL DEFAULT 0,
    payments_orphaned          bigint NOT NULL DEFAULT 0,
    -- Mean = total / payments_confirmed; p95 from payment_timings (confirmed_day = day).
    confirmation_ms_total      bigint NOT NULL DEFAULT 0
);

-- Per UTC day: the platform's revenue, for admins.
CREATE TABLE platform_revenue_daily (
    day           date   PRIMARY KEY,
    settlements   bigint NOT NULL DEFAULT 0,
    gross_volume  bigint NOT NULL DEFAULT 0,
    fees          bigint NOT NULL DEFAULT 0,
    net_volume    bigint NOT NULL DEFAULT 0
);

-- What the fold remembers per invoice and per payment to count transitions and durations.
CREATE TABLE read_model_invoices (
    invoice_id         text        PRIMARY KEY,
    merchant_id        text        NOT NULL,
    status             text        NOT NULL,
    payment_exception  text,
    created_at         timestamptz,
    aggregate_version  integer     NOT NULL
);

CREATE TABLE payment_timings (
    payment_id            text        PRIMARY KEY,
    invoice_id            text,
    detected_at           timestamptz NOT NULL,
    confirmed_at          timestamptz,
    confirmed_day         date,
    confirmation_ms       bigint
);
CREATE INDEX payment_timings_confirmed_day_idx
    ON payment_timings (confirmed_day, confirmation_ms) WHERE confirmed_day IS NOT NULL;

-- Invoice summaries gain the payments' side: their tx hashes, in order of detection, the block
-- of each (the same position; a transfer re-mined after a reorg keeps its place, with its new
-- block), and the confirmations the latest payment event reported
-- (app/adapters/postgres/projections.py).
ALTER TABLE invoice_summaries
    ADD COLUMN tx_hashes      text[]   NOT NULL DEFAULT '{}',
    ADD COLUMN block_numbers  bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN confirmations  integer  NOT NULL DEFAULT 0;

-- Which rebuild swapped which read model in, and up to which event (operators' record).
CREATE TABLE read_model_rebuilds (
    rebuild_id   bigserial   PRIMARY KEY,
    read_model   text        NOT NULL,
    events       bigint      NOT NULL,
    through_seq  bigint      NOT NULL,
    rebuilt_at   timestamptz NOT NULL DEFAULT now()
);

-- An amount as events state it (decimal USDT, "51.57") in micro-USDT.
CREATE FUNCTION read_models_micro(amount text) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT
    RETURN round(amount::numeric * 1000000)::bigint;
-- (STRICT: NULL for an amount the event does not state; callers count it as 0.)

-- A duration in whole milliseconds.
CREATE FUNCTION read_models_ms(duration interval) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT
    RETURN round(extract(epoch FROM duration) * 1000)::bigint;

-- One event into every read model above. Deterministic: only the event and these tables.
CREATE FUNCTION read_models_apply(e event_store) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    d            jsonb := e.payload -> 'data';
    day          date := (e.occurred_at AT TIME ZONE 'UTC')::date;
    old          read_model_invoices%ROWTYPE;
    new_status   text;
    new_exc      text;
    detected     timestamptz;
    ms           bigint;
    inserted     boolean;
BEGIN
    IF e.aggregate_type = 'invoice' THEN
        IF e.event_type = 'InvoiceCreated' THEN
            new_status := 'pending';
            new_exc := NULL;
        ELSE
            new_status := d ->> 'status';
            new_exc := d ->> 'payment_exception';
        END IF;
        SELECT * INTO old FROM read_model_invoices WHERE invoice_id = e.aggregate_id;
        IF new_status IS NULL THEN
            NULL;  -- not an event that states the invoice's status (none today)
        ELSIF old.invoice_id IS NULL THEN
            INSERT INTO read_model_invoices
                VALUES (e.aggregate_id, e.merchant_id, new_status, new_exc,
                        CASE WHEN e.event_type = 'InvoiceCreated' THEN e.occurred_at END,
                        e.aggregate_version);
            PERFORM read_models_count_status(e, NULL, NULL, new_status, new_exc);
        ELSIF old.aggregate_version < e.aggregate_version THEN
            UPDATE read_model_invoices
                SET status = new_status, payment_exception = new_exc,
                    aggregate_version = e.aggregate_version
                WHERE invoice_id = e.aggregate_id;
            PERFORM read_models_count_status(e, old.status, old.payment_exception,
                                             new_status, new_exc);
        END IF;
        IF e.event_type = 'InvoiceCreated' THEN
            -- Created late (replayed after later events): the creation time is still known.
            UPDATE read_model_invoices SET created_at = e.occurred_at
                WHERE invoice_id = e.aggregate_id AND created_at IS NULL;
            PERFORM read_models_merchant(e, invoices_created => 1);
            PERFORM read_models_daily(e.merchant_id, day, invoices_created => 1);
        ELSIF e.event_type = 'InvoicePaid' THEN
            SELECT created_at INTO detected FROM read_model_invoices
                WHERE invoice_id = e.aggregate_id;
            ms := read_models_ms(e.occurred_at - detected);
            PERFORM read_models_merchant(e, paid_ms => ms);
            PERFORM read_models_daily(e.merchant_id, day, invoices_paid => 1);
        ELSIF e.event_type = 'InvoiceExpired' THEN
            PERFORM read_models_daily(e.merchant_id, day, invoices_expired => 1);
        END IF;

    ELSIF e.aggregate_type = 'payment' THEN
        IF e.event_type = 'PaymentDetected' THEN
            INSERT INTO payment_timings (payment_id, invoice_id, detected_at)
                VALUES (e.aggregate_id, d ->> 'invoice_id', e.occurred_at)
                ON CONFLICT (payment_id) DO UPDATE SET detected_at = EXCLUDED.detected_at
                RETURNING (xmax = 0) INTO inserted;
            -- A payment detected again after a reorg is the same payment: counted once.
            IF inserted THEN
                PERFORM read_models_payments(day, detected => 1);
            END IF;
        ELSIF e.event_type = 'PaymentConfirmed' THEN
            UPDATE payment_timings
                SET confirmed_at = e.occurred_at, confirmed_day = day,
                    confirmation_ms = read_models_ms(e.occurred_at - detected_at)
                WHERE payment_id = e.aggregate_id AND confirmed_at IS NULL
                RETURNING confirmation_ms INTO ms;
            IF FOUND THEN  -- confirmed once; a payment not seen detected is not timed
                PERFORM read_models_payments(day, confirmed => 1, ms => ms);
            END IF;
        ELSIF e.event_type = 'PaymentFailed' THEN
            PERFORM read_models_payments(day, failed => 1);
        ELSIF e.event_type = 'PaymentOrphaned' THEN
            PERFORM read_models_payments(day, orphaned => 1);
        END IF;

    ELSIF e.aggregate_type = 'settlement' THEN
        IF e.event_type = 'SettlementCreated' THEN
            PERFORM read_models_settled(e, day,
                                        coalesce(read_models_micro(d ->> 'gross_amount'), 0),
                                        coalesce(read_models_micro(d ->> 'platform_fee_amount'), 0),
                                        coalesce(read_models_micro(d ->> 'net_amount'), 0));
        ELSIF e.event_type = 'SettlementCompleted' THEN
            PERFORM read_models_merchant(
                e, credited => coalesce(read_models_micro(d ->> 'net_amount'), 0));
        END IF;
    END IF;
END
$$;

-- An invoice moved from one status (and payment exception) to another: the counters follow.
CREATE FUNCTION read_models_count_status(
    e event_store, old_status text, old_exc text, new_status text, new_exc text
) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO merchant_dashboard (merchant_id, updated_at) VALUES (e.merchant_id, e.occurred_at)
        ON CONFLICT (merchant_id) DO NOTHING;
    UPDATE merchant_dashboard SET
        invoices_pending = invoices_pending
            + coalesce((new_status = 'pending')::int, 0) - coalesce((old_status = 'pending')::int, 0),
        invoices_confirming = invoices_confirming
            + coalesce((new_status = 'confirming')::int, 0) - coalesce((old_status = 'confirming')::int, 0),
        invoices_paid = invoices_paid
            + coalesce((new_status = 'paid')::int, 0) - coalesce((old_status = 'paid')::int, 0),
        invoices_expired = invoices_expired
            + coalesce((new_status = 'expired')::int, 0) - coalesce((old_status = 'expired')::int, 0),
        invoices_cancelled = invoices_cancelled
            + coalesce((new_status = 'cancelled')::int, 0) - coalesce((old_status = 'cancelled')::int, 0),
        invoices_underpaid = invoices_underpaid
            + coalesce((new_exc = 'underpaid')::int, 0) - coalesce((old_exc = 'underpaid')::int, 0),
        invoices_overpaid = invoices_overpaid
            + coalesce((new_exc = 'overpaid')::int, 0) - coalesce((old_exc = 'overpaid')::int, 0),
        invoices_paid_late = invoices_paid_late
            + coalesce((new_exc = 'paid_late')::int, 0) - coalesce((old_exc = 'paid_late')::int, 0),
        updated_at = greatest(updated_at, e.occurred_at)
    WHERE merchant_id = e.merchant_id;
END
$$;

CREATE FUNCTION read_models_merchant(
    e event_store,
    invoices_created bigint DEFAULT 0,
    paid_ms bigint DEFAULT NULL,
    credited bigint DEFAULT 0
) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO merchant_dashboard AS m (merchant_id, invoices_created, ms_to_paid_total,
                                         paid_with_time, balance, updated_at)
        VALUES (e.merchant_id, invoices_created, coalesce(paid_ms, 0),
                (paid_ms IS NOT NULL)::int, credited, e.occurred_at)
        ON CONFLICT (merchant_id) DO UPDATE SET
            invoices_created = m.invoices_created + EXCLUDED.invoices_created,
            ms_to_paid_total = m.ms_to_paid_total + EXCLUDED.ms_to_paid_total,
            paid_with_time = m.paid_with_time + EXCLUDED.paid_with_time,
            balance = m.balance + EXCLUDED.balance,
            updated_at = greatest(m.updated_at, EXCLUDED.updated_at);
END
$$;

CREATE FUNCTION read_models_daily(
    merchant text,
    on_day date,
    invoices_created bigint DEFAULT 0,
    invoices_paid bigint DEFAULT 0,
    invoices_expired bigint DEFAULT 0,
    gross bigint DEFAULT 0,
    fee bigint DEFAULT 0,
    net bigint DEFAULT 0
) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO daily_settlement_metrics AS m (merchant_id, day, invoices_created, invoices_paid,
                                               invoices_expired, gross_volume, fees, net_volume,
                                               settlements)
        VALUES (merchant, on_day, invoices_created, invoices_paid, invoices_expired, gross, fee,
                net, (gross > 0)::int)
        ON CONFLICT (merchant_id, day) DO UPDATE SET
            invoices_created = m.invoices_created + EXCLUDED.invoices_created,
            invoices_paid = m.invoices_paid + EXCLUDED.invoices_paid,
            invoices_expired = m.invoices_expired + EXCLUDED.invoices_expired,
            gross_volume = m.gross_volume + EXCLUDED.gross_volume,
            fees = m.fees + EXCLUDED.fees,
            net_volume = m.net_volume + EXCLUDED.net_volume,
            settlements = m.settlements + EXCLUDED.settlements;
END
$$;

CREATE FUNCTION read_models_payments(
    on_day date,
    detected bigint DEFAULT 0,
    confirmed bigint DEFAULT 0,
    failed bigint DEFAULT 0,
    orphaned bigint DEFAULT 0,
    ms bigint DEFAULT 0
) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO payment_confirmation_stats AS s (day, payments_detected, payments_confirmed,
                                                 payments_failed, payments_orphaned,
                                                 confirmation_ms_total)
        VALUES (on_day, detected, confirmed, failed, orphaned, ms)
        ON CONFLICT (day) DO UPDATE SET
            payments_detected = s.payments_detected + EXCLUDED.payments_detected,
            payments_confirmed = s.payments_confirmed + EXCLUDED.payments_confirmed,
            payments_failed = s.payments_failed + EXCLUDED.payments_failed,
            payments_orphaned = s.payments_orphaned + EXCLUDED.payments_orphaned,
            confirmation_ms_total = s.confirmation_ms_total + EXCLUDED.confirmation_ms_total;
END
$$;

-- A settlement: the merchant's volumes and balance, the day's, the platform's revenue.
CREATE FUNCTION read_models_settled(
    e event_store, on_day date, gross bigint, fee bigint, net bigint
) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO merchant_dashboard AS m (merchant_id, gross_volume, fees, net_volume,
                                         settlements, updated_at)
        VALUES (e.merchant_id, gross, fee, net, 1, e.occurred_at)
        ON CONFLICT (merchant_id) DO UPDATE SET
            gross_volume = m.gross_volume + gross,
            fees = m.fees + fee,
            net_volume = m.net_volume + net,
            settlements = m.settlements + 1,
            updated_at = greatest(m.updated_at, e.occurred_at);
    PERFORM read_models_daily(e.merchant_id, on_day, gross => gross, fee => fee, net => net);
    INSERT INTO platform_revenue_daily AS p (day, settlements, gross_volume, fees, net_volume)
        VALUES (on_day, 1, gross, fee, net)
        ON CONFLICT (day) DO UPDATE SET
            settlements = p.settlements + 1,
            gross_volume = p.gross_volume + gross,
            fees = p.fees + fee,
            net_volume = p.net_volume + net;
END
$$;

CREATE FUNCTION read_models_on_event() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM read_models_apply(NEW);
    RETURN NULL;
END
$$;

-- Fires only for rows really inserted: a redelivered event (ON CONFLICT DO NOTHING) does not.
CREATE TRIGGER event_store_read_models
    AFTER INSERT ON event_store
    FOR EACH ROW EXECUTE FUNCTION read_models_on_event();

-- The events recorded before this migration are not folded here: one transaction updating the
-- same rows (a day's platform figures) hundreds of thousands of times slows down with every
-- update, as none of the old row versions can be pruned before it ends. After upgrading a
-- database that already holds events, run `checkout rebuild-read-models`, which replays them in
-- short transactions (docs/reports.md, docs/operations.md).
