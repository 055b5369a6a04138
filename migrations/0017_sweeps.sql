-- Sweeps (docs/money-out.md, "Sweeps"): the settled USDT of a deposit address moved into the hot
-- wallet after a TRX top-up, each sweep kept with what it cost, from the solidified receipts.
-- Every change of a sweep is one transaction with the ledger movement it books (the journal of
-- migration 0016: TRX top-up `deposit:<address>` ← `hot_wallet`, USDT `hot_wallet` ←
-- `customer_funds`, TRX burned to `network_costs`).

CREATE TABLE sweeps (
    sweep_id          text PRIMARY KEY,
    deposit_address   text NOT NULL,
    derivation_index  bigint NOT NULL CHECK (derivation_index BETWEEN 0 AND 2147483647),
    invoice_id        text NOT NULL,
    merchant_id       text NOT NULL,
    -- micro-USDT: settled at the address and not swept before, and on chain when it started
    amount            bigint NOT NULL CHECK (amount > 0),
    stage             text NOT NULL
                      CHECK (stage IN ('due', 'topping_up', 'sweeping', 'confirmed', 'failed')),
    version           integer NOT NULL CHECK (version >= 1),
    failure_reason    text,
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- the sweep transaction's fee limit (sun), planned with its top-up
    energy_budget     bigint NOT NULL DEFAULT 0,
    -- The transaction being signed or followed: attempt n is signing request `<id>:<n>`.
    tx_kind           text CHECK (tx_kind IN ('topup', 'sweep')),
    tx_number         integer,
    tx_amount         bigint,
    tx_fee_limit      bigint,
    txid              text,
    raw_data          jsonb,
    raw_data_hex      text,
    expiration_ms     bigint,
    signature         text,
    broadcast_accepted boolean NOT NULL DEFAULT false,
    block_number      bigint,
    request_sent_at   timestamptz,
    -- What it cost so far, over every transaction (sun; energy units; bytes of bandwidth).
    trx_topped_up     bigint NOT NULL DEFAULT 0,
    topup_fees        bigint NOT NULL DEFAULT 0,
    sweep_fees        bigint NOT NULL DEFAULT 0,
    energy_usage      bigint NOT NULL DEFAULT 0,
    energy_fee        bigint NOT NULL DEFAULT 0,
    net_usage         bigint NOT NULL DEFAULT 0,
    net_fee           bigint NOT NULL DEFAULT 0,
    out_of_energy     integer NOT NULL DEFAULT 0,
    swept_txid        text,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    finished_at       timestamptz,
    CHECK ((tx_kind IS NULL) = (txid IS NULL))
);

-- One open sweep per address: two leaders racing to start one cannot both.
CREATE UNIQUE INDEX sweeps_one_open_per_address ON sweeps (deposit_address)
    WHERE stage IN ('due', 'topping_up', 'sweeping');
CREATE INDEX sweeps_open_idx ON sweeps (created_at, sweep_id)
    WHERE stage IN ('due', 'topping_up', 'sweeping');
CREATE INDEX sweeps_address_idx ON sweeps (deposit_address, stage);
CREATE INDEX sweeps_merchant_idx ON sweeps (merchant_id, created_at DESC);

-- Every solidified transaction of a sweep, as its receipt said (`gettransactioninfobyid`: fee,
-- receipt.energy_usage_total, receipt.energy_fee, receipt.net_usage, receipt.net_fee).
CREATE TABLE sweep_transactions (
    sweep_id      text NOT NULL REFERENCES sweeps (sweep_id),
    tx_number     integer NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('topup', 'sweep')),
    txid          text NOT NULL UNIQUE,
    amount        bigint NOT NULL,
    block_number  bigint NOT NULL,
    result        text NOT NULL,
    fee           bigint NOT NULL,
    energy_usage  bigint NOT NULL,
    energy_fee    bigint NOT NULL,
    net_usage     bigint NOT NULL,
    net_fee       bigint NOT NULL,
    booked_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sweep_id, tx_number)
);

