-- Chain watcher state: the cursor (last fully processed block) and the recent, not yet solidified
-- blocks with the transfers seen in them, kept to detect reorganisations through parentHash and to
-- orphan the transfers of replaced blocks. Rows below the solidified height are pruned.
-- One row set per watcher name, so several networks or tokens may share a database.

CREATE TABLE IF NOT EXISTS chain_watcher_cursor (
    watcher_name  text        PRIMARY KEY,
    block_number  bigint      NOT NULL CHECK (block_number >= -1),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS chain_watcher_blocks (
    watcher_name     text        NOT NULL,
    block_number     bigint      NOT NULL CHECK (block_number >= 0),
    block_id         char(64)    NOT NULL,
    parent_hash      char(64)    NOT NULL,
    block_timestamp  timestamptz NOT NULL,
    CONSTRAINT chain_watcher_blocks_pkey PRIMARY KEY (watcher_name, block_number)
);

CREATE TABLE IF NOT EXISTS chain_watcher_transfers (
    watcher_name      text          NOT NULL,
    block_number      bigint        NOT NULL,
    position          integer       NOT NULL CHECK (position >= 0),
    tx_hash           char(64)      NOT NULL,
    log_index         integer       NOT NULL CHECK (log_index >= 0),
    contract_address  text          NOT NULL,
    from_address      text          NOT NULL,
    to_address        text          NOT NULL,
    amount            numeric(78,0) NOT NULL CHECK (amount >= 0),
    CONSTRAINT chain_watcher_transfers_pkey PRIMARY KEY (watcher_name, block_number, position),
    CONSTRAINT chain_watcher_transfers_identity_key UNIQUE (watcher_name, tx_hash, log_index),
    CONSTRAINT chain_watcher_transfers_block_fkey FOREIGN KEY (watcher_name, block_number)
        REFERENCES chain_watcher_blocks (watcher_name, block_number) ON DELETE CASCADE
);
