-- Merchants and their API keys. A key is shown once, at creation; only its SHA-256 is stored
-- (the secret part is 32 random bytes, so a fast hash is enough: there is nothing to brute-force).
CREATE TABLE merchants (
    merchant_id            text PRIMARY KEY,
    name                   text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- Percent of the gross kept by the platform, at most 2 decimals (app/domain/fees.py).
    fee_percentage         numeric(5, 2) NOT NULL DEFAULT 1.00
                           CHECK (fee_percentage >= 0 AND fee_percentage <= 100),
    -- Replaces the amount-based confirmation policy for this merchant's invoices when set.
    confirmation_override  integer CHECK (confirmation_override BETWEEN 1 AND 100),
    created_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_id        text PRIMARY KEY,
    merchant_id   text NOT NULL REFERENCES merchants (merchant_id),
    secret_sha256 bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

CREATE INDEX api_keys_merchant_idx ON api_keys (merchant_id);
