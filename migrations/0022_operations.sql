-- The operator's commands (docs/operations.md, "The operator's CLI").

-- Dead letters replayed with `checkout dlq replay`: each once, unless the operator forces it
-- again (agents are idempotent, so a second replay changes nothing; this keeps it from being
-- done by mistake, and `checkout dlq purge --replayed` deletes only what was replayed).
CREATE TABLE dead_letter_replays (
    dlq_topic        text        NOT NULL CHECK (length(dlq_topic) BETWEEN 1 AND 249),
    dlq_partition    integer     NOT NULL CHECK (dlq_partition >= 0),
    dlq_offset       bigint      NOT NULL CHECK (dlq_offset >= 0),
    source_topic     text        NOT NULL,
    error_type       text,
    -- Where the replayed message went on the source topic.
    replayed_to_partition  integer NOT NULL,
    replayed_to_offset     bigint  NOT NULL,
    replays          integer     NOT NULL DEFAULT 1 CHECK (replays >= 1),
    replayed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dlq_topic, dlq_partition, dlq_offset)
);

-- Reorganisations the chain watcher unwound, for `checkout chain status` ("last reorg"): written
-- in the same transaction as the rewind of the cursor.
CREATE TABLE chain_watcher_reorgs (
    reorg_id        bigserial   PRIMARY KEY,
    watcher_name    text        NOT NULL,
    fork_block      bigint      NOT NULL CHECK (fork_block >= -1),
    replaced_through bigint     NOT NULL,
    detected_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX chain_watcher_reorgs_watcher_idx ON chain_watcher_reorgs (watcher_name, reorg_id DESC);

-- `checkout webhooks retry`: failed deliveries by when they failed, and whether one was sent
-- again (only the last delivery of a chain of redeliveries is retried).
CREATE INDEX webhook_deliveries_failed_idx ON webhook_deliveries (completed_at)
    WHERE status = 'failed';
CREATE INDEX webhook_deliveries_redelivery_of_idx ON webhook_deliveries (redelivery_of)
    WHERE redelivery_of IS NOT NULL;
