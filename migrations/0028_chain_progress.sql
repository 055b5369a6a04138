-- How far each partition of the deposits topic has processed the chain (docs/reliability.md,
-- "Expiry waits for the chain"). The payment agent handles a partition's chain head only after
-- every transfer before it, so a row here says: every payment in a block up to `head_number`
-- to an address of this partition has been applied and told to its invoice. Invoice expiry
-- waits until every partition has processed a block produced after the invoice's `expires_at`,
-- so a watcher, node or worker that lags never turns an on-time payment into a late one.
-- Rows are per deposits topic (its name carries CHECKOUT_TOPIC_NAMESPACE), written about once a
-- second by the worker that owns the partition; a rewind (reorg, replaced node) writes lower.

CREATE TABLE chain_progress (
    topic            text        NOT NULL,
    partition        integer     NOT NULL CHECK (partition >= 0),
    head_number      bigint      NOT NULL CHECK (head_number >= 0),
    head_block_id    text        NOT NULL,
    block_timestamp  timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
