-- Every start of the chain watcher (docs/chain.md, "Where the watcher starts"): which block it
-- read first, why there, and the blocks it left unread when it started past the platform's
-- previous cursor. `checkout chain status` shows the last start and the gaps; the watcher reads
-- this table, scoped to its platform (app_id = CHECKOUT_APP_ID) and network, to tell a
-- platform's very first start (at the node's head) from a lost cursor or a renamed watcher
-- (it refuses to start at the head then: that would skip every payment made meanwhile).

CREATE TABLE chain_watcher_starts (
    start_id        bigserial   PRIMARY KEY,
    app_id          text        NOT NULL,
    -- TRON_NETWORK; NULL only for the rows this migration records for watchers of unknown network.
    network         text,
    watcher_name    text        NOT NULL,
    first_block     bigint      NOT NULL CHECK (first_block >= 0),
    -- first: the platform's first start ever, at the head; resume: from its cursor; setting:
    -- TRON_WATCHER_START_HEIGHT; command: `checkout chain start`; migration: see below.
    how             text        NOT NULL
        CHECK (how IN ('first', 'resume', 'setting', 'command', 'migration')),
    -- The last block this platform was known to have read when the cursor was made (NULL: none).
    previous_block  bigint,
    -- Blocks never read: previous_block + 1 .. first_block - 1; `checkout chain rescan` repairs.
    gap_from        bigint,
    gap_to          bigint,
    started_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chain_watcher_starts_gap_check CHECK (
        (gap_from IS NULL AND gap_to IS NULL)
        OR (gap_from >= 0 AND gap_from <= gap_to AND gap_to < first_block)
    )
);

CREATE INDEX chain_watcher_starts_platform_idx
    ON chain_watcher_starts (app_id, network, watcher_name);
CREATE INDEX chain_watcher_starts_watcher_idx ON chain_watcher_starts (watcher_name, start_id DESC);

-- The watchers that ran before starts were recorded. Their platform is not stored anywhere: they
-- are counted as the default CHECKOUT_APP_ID's (as migration 0020 did for money-out rows), with
-- the network of the default name `tron-usdt-<network>`, or any network for another name.
INSERT INTO chain_watcher_starts (app_id, network, watcher_name, first_block, how, started_at)
SELECT 'crypto-checkout',
       substring(watcher_name FROM '^tron-usdt-(sim|nile|shasta|mainnet)$'),
       watcher_name,
       block_number + 1,
       'migration',
       updated_at
FROM chain_watcher_cursor;
