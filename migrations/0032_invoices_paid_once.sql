-- An invoice paid again after a reorg reversed its settlement (round 2 or more: InvoicePaid's
-- `settlement_round`, docs/reliability.md "A reorg after settlement") is one paid invoice: the
-- merchant's and the day's `invoices_paid` and the average time to pay count its first round
-- only. Before, each round was counted. The function is 0030's but for that condition.

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
        ELSIF e.event_type = 'InvoicePaid'
              AND coalesce((d ->> 'settlement_round')::int, 1) = 1 THEN
            -- Paid once: a round after a reorg reversed the settlement is not another paid
            -- invoice, nor another time to pay.
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
