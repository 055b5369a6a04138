-- Money out (docs/money-out.md): the ledger becomes a general journal, and refunds and payouts
-- are recorded with the ledger they move, in the same transactions.

-- 1. The general journal. Every movement of money is one ledger transaction whose entries sum to
-- zero per currency (USDT and TRX are never summed together). Signs as the settlement entries
-- have always had them: a credit (what the platform owes or earned) is positive, a debit (what
-- it holds, or spent) is negative. So `merchant:<id>` is the merchant's available balance as a
-- positive number, and the USDT the platform holds shows as negative `customer_funds`.
CREATE TABLE ledger_transactions (
    tx_id       bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind ~ '^[a-z_]{1,40}$'),
    reference   text NOT NULL CHECK (length(reference) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- A movement is booked once: a retried booking finds its transaction.
    UNIQUE (kind, reference)
);

ALTER TABLE ledger_entries
    ADD COLUMN tx_id bigint REFERENCES ledger_transactions (tx_id),
    ADD COLUMN currency text NOT NULL DEFAULT 'USDT' CHECK (currency IN ('USDT', 'TRX')),
    ALTER COLUMN settlement_id DROP NOT NULL;

-- Every settlement booked so far becomes a transaction of kind `settlement` (same entries, same
-- amounts and signs: every balance reads the same before and after).
INSERT INTO ledger_transactions (kind, reference, created_at)
SELECT 'settlement', settlement_id, coalesce(completed_at, created_at) FROM settlements
ORDER BY created_at, settlement_id;

UPDATE ledger_entries e SET tx_id = t.tx_id
FROM ledger_transactions t
WHERE t.kind = 'settlement' AND t.reference = e.settlement_id;

ALTER TABLE ledger_entries ALTER COLUMN tx_id SET NOT NULL;
CREATE INDEX ledger_entries_tx_idx ON ledger_entries (tx_id);

-- The database itself refuses a movement that does not balance: checked at commit, once all the
-- transaction's entries are in.
CREATE FUNCTION ledger_check_balanced() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    off record;
BEGIN
    SELECT currency, sum(amount) AS total INTO off
    FROM ledger_entries WHERE tx_id = NEW.tx_id
    GROUP BY currency HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % does not balance: % entries sum to %',
            NEW.tx_id, off.currency, off.total USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER ledger_entries_balanced
    AFTER INSERT ON ledger_entries DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced();

-- 2. Refunds and payouts: outgoing transfers from the hot wallet, one row each, kept with the
-- ledger they move. `stage` is the one state machine both follow (app/domain/money_out.py); the
-- API shows it in each kind's own words (a refund is `pending` until broadcast).
CREATE TABLE outgoing_transfers (
    transfer_id          text PRIMARY KEY,
    kind                 text NOT NULL CHECK (kind IN ('refund', 'payout')),
    merchant_id          text NOT NULL,
    invoice_id           text,
    amount               bigint NOT NULL CHECK (amount > 0),
    to_address           text NOT NULL,
    stage                text NOT NULL CHECK (stage IN ('requested', 'approved', 'signing',
                             'broadcast', 'confirmed', 'failed', 'cancelled')),
    version              integer NOT NULL CHECK (version >= 1),
    failure_reason       text,
    approval             text NOT NULL CHECK (approval IN ('automatic', 'admin')),
    approved_by          text,
    network_fee_payer    text NOT NULL CHECK (network_fee_payer IN ('platform', 'merchant')),
    network_fee_charged  bigint NOT NULL DEFAULT 0 CHECK (network_fee_charged >= 0),
    -- The transaction being signed or followed: attempt n is signing request `<id>:<n>`.
    attempt              integer NOT NULL DEFAULT 0,
    txid                 text,
    raw_data             jsonb,
    raw_data_hex         text,
    expiration_ms        bigint,
    signature            text,
    broadcast_accepted   boolean NOT NULL DEFAULT false,
    request_sent_at      timestamptz,
    block_number         bigint,
    fee_sun              bigint,
    energy_usage         bigint,
    net_usage            bigint,
    idempotency_key      text,
    request_fingerprint  text,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    approved_at          timestamptz,
    broadcast_at         timestamptz,
    finished_at          timestamptz,
    CHECK ((kind = 'refund') = (invoice_id IS NOT NULL)),
    UNIQUE (merchant_id, kind, idempotency_key)
);

CREATE INDEX outgoing_transfers_open_idx ON outgoing_transfers (stage, approved_at)
    WHERE stage IN ('approved', 'signing', 'broadcast');
CREATE INDEX outgoing_transfers_merchant_idx
    ON outgoing_transfers (merchant_id, kind, created_at DESC, transfer_id DESC);
CREATE INDEX outgoing_transfers_invoice_idx ON outgoing_transfers (invoice_id)
    WHERE invoice_id IS NOT NULL;

-- The signer's answers as the workers received them (checkout.signatures), by request id.
CREATE TABLE signing_answers (
    request_id   text PRIMARY KEY,
    txid         text,
    signature    text,
    refused      text,
    message      text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((signature IS NULL) <> (refused IS NULL))
);

-- Domain events of the money-out aggregates, written in the transaction that decided them and
-- published to crypto-checkout.domain-events afterwards (a transactional outbox: an event is
-- never published for a change that was rolled back, nor lost for one that was committed).
CREATE TABLE money_out_outbox (
    seq           bigserial PRIMARY KEY,
    event_id      uuid NOT NULL UNIQUE,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);

CREATE INDEX money_out_outbox_unpublished_idx ON money_out_outbox (seq)
    WHERE published_at IS NULL;

-- Who sent an invoice's payments (the default address of a refund), from the event store.
CREATE INDEX event_store_payment_invoice_idx
    ON event_store ((payload -> 'data' ->> 'invoice_id'))
    WHERE event_type = 'PaymentDetected';

-- Per-merchant money-out settings.
ALTER TABLE merchants
    ADD COLUMN payout_approval_threshold bigint CHECK (payout_approval_threshold >= 0);
