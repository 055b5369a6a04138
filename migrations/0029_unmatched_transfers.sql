-- Received money that paid no invoice (docs/operations.md, "Unmatched transfers"): a transfer of
-- USDT to one of our deposit addresses that the payment agent did not apply — no invoice is
-- registered for the address (not_a_deposit_address), or it came after the invoice's monitoring
-- window (after_monitoring_window). The projection agent records each UnmatchedTransferReceived
-- here in the transaction that stores the event (app/adapters/postgres/unmatched.py), once per
-- transfer: a redelivered event, or the same transfer seen again in another block after a
-- reorg, changes nothing (the first observation is kept).
--
-- Not a read model that `checkout rebuild-read-models` rebuilds: the resolved_* columns are the
-- operators' own record (`checkout chain unmatched resolve`), which no event holds. Amounts are
-- micro-USDT. Zero-value transfers (address-poisoning spam) are never recorded here.

CREATE TABLE unmatched_transfers (
    -- <tx_hash>:<log_index>, the transfer's identity wherever it travels.
    transfer_id      text        PRIMARY KEY,
    tx_hash          text        NOT NULL CHECK (tx_hash ~ '^[0-9a-f]{64}$'),
    log_index        integer     NOT NULL CHECK (log_index >= 0),
    block_number     bigint      NOT NULL CHECK (block_number >= 0),
    block_id         text        NOT NULL,
    block_timestamp  timestamptz NOT NULL,
    from_address     text        NOT NULL,
    to_address       text        NOT NULL,
    amount           bigint      NOT NULL CHECK (amount > 0),
    -- The event's reason; not constrained here, so that a reason added to the event later is
    -- recorded rather than refused (which would stop the projection).
    reason           text        NOT NULL,
    invoice_id       text,
    merchant_id      text,
    event_id         uuid        NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    -- The operator's handling: a refund sent, a credit booked, or why nothing is owed.
    resolved_at      timestamptz,
    resolved_by      text,
    resolution_note  text CHECK (length(resolution_note) <= 500),
    CONSTRAINT unmatched_transfers_transfer_key UNIQUE (tx_hash, log_index),
    CONSTRAINT unmatched_transfers_id_check CHECK (transfer_id = tx_hash || ':' || log_index),
    CONSTRAINT unmatched_transfers_resolution_check CHECK (
        (resolved_at IS NULL AND resolved_by IS NULL AND resolution_note IS NULL)
        OR (resolved_at IS NOT NULL AND resolved_by IS NOT NULL AND resolution_note IS NOT NULL)
    )
);

-- `checkout chain unmatched [--since T] [--open]`: newest first, by when the money arrived.
CREATE INDEX unmatched_transfers_time_idx ON unmatched_transfers (block_timestamp DESC, transfer_id);
CREATE INDEX unmatched_transfers_open_idx
    ON unmatched_transfers (block_timestamp DESC) WHERE resolved_at IS NULL;
