-- A reorg after settlement (docs/reliability.md, "A reorg after settlement"): a paid invoice
-- whose confirmed payment is reorganised away has its settlement reversed, and is settled again in
-- a new round (a settlement of its own) when the transfer is included again.
--
-- 1. A settlement may be `reversed` (the ledger books it back by a transaction of kind
--    `settlement_reversal`; its original entries stay). An invoice has at most one settlement
--    that is not reversed: rounds after a reversal are new rows.
ALTER TABLE settlements DROP CONSTRAINT settlements_status_check;
ALTER TABLE settlements ADD CONSTRAINT settlements_status_check
    CHECK (status IN ('pending', 'completed', 'failed', 'reversed'));
ALTER TABLE settlements ADD COLUMN reversed_at timestamptz;
ALTER TABLE settlements DROP CONSTRAINT settlements_invoice_id_key;
CREATE UNIQUE INDEX settlements_invoice_current_key ON settlements (invoice_id)
    WHERE status <> 'reversed';
CREATE INDEX settlements_invoice_idx ON settlements (invoice_id);

-- 2. The read models take SettlementReversed: the day's and the merchant's volumes, the count of
--    settlements and the merchant's balance go back by what the settlement had added.
CREATE FUNCTION read_models_unsettled(
    e event_store, on_day date, gross bigint, fee bigint, net bigint
) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    UPDATE merchant_dashboard AS m SET
        gross_volume = m.gross_volume - gross,
        fees = m.fees - fee,
        net_volume = m.net_volume - net,
        settlements = m.settlements - 1,
        updated_at = greatest(m.updated_at, e.occurred_at)
    WHERE m.merchant_id = e.merchant_id;
    PERFORM read_models_daily(e.merchant_id, on_day, gross => -gross, fee => -fee, net => -net);
    UPDATE daily_settlement_metrics SET settlements = settlements - 1
        WHERE merchant_id = e.merchant_id AND day = on_day;
    INSERT INTO platform_revenue_daily AS p (day, settlements, gross_volume, fees, net_volume)
        VALUES (on_day, -1, -gross, -fee, -net)
        ON CONFLICT (day) DO UPDATE SET
            settlements = p.settlements - 1,
            gross_volume = p.gross_volume - gross,
            fees = p.fees - fee,
            net_volume = p.net_volume - net;
END
$$;

CREATE OR REPLACE FUNCTION read_models_apply(e event_store) RETURNS void
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
        ELSIF e.event_type = 'SettlementReversed' THEN
            -- Booked back on the day of the reorg: the volumes, the count and the balance.
            PERFORM read_models_unsettled(e, day,
                                          coalesce(read_models_micro(d ->> 'gross_amount'), 0),
                                          coalesce(read_models_micro(d ->> 'platform_fee_amount'), 0),
                                          coalesce(read_models_micro(d ->> 'net_amount'), 0));
            PERFORM read_models_merchant(
                e, credited => -coalesce(read_models_micro(d ->> 'net_amount'), 0));
        END IF;
    END IF;
END
$$;
