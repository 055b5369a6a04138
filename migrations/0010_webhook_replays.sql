-- Webhook replays, queued in the background (app/adapters/webhooks/replays.py): the request
-- counts what it will send and returns at once; a worker then queues the deliveries in batches,
-- each batch and the cursor below in one transaction, so a worker that dies mid-replay leaves
-- it to another, which goes on from the last batch recorded.
CREATE TABLE webhook_replays (
    replay_id                text PRIMARY KEY,
    endpoint_id              text NOT NULL REFERENCES webhook_endpoints (endpoint_id),
    merchant_id              text NOT NULL,
    range_start              timestamptz NOT NULL,
    range_end                timestamptz NOT NULL CHECK (range_end > range_start),
    expected                 integer NOT NULL CHECK (expected >= 0),
    queued                   integer NOT NULL DEFAULT 0,
    -- The last event read, in event_store's replay order.
    after_occurred_at        timestamptz,
    after_aggregate_id       text,
    after_aggregate_version  bigint,
    status                   text NOT NULL DEFAULT 'queued'
                             CHECK (status IN ('queued', 'done', 'cancelled')),
    leased_until             timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    completed_at             timestamptz
);

CREATE INDEX webhook_replays_open_idx ON webhook_replays (created_at) WHERE status = 'queued';
CREATE INDEX webhook_replays_merchant_idx ON webhook_replays (merchant_id, created_at);
