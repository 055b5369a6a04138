-- Settlements and the platform ledger. A settlement is completed when its net amount is credited
-- to the merchant's balance here (paying that balance out is a separate, later flow).
-- Every settlement writes three entries that sum to zero (double entry, micro-USDT):
--   customer_funds  -gross   the USDT received at the invoice's deposit address
--   merchant:<id>   +net     owed to the merchant
--   platform_fees   +fee     the platform's revenue
-- Written by the settlement agent in one transaction, idempotently (a redelivered InvoicePaid
-- finds its rows and changes nothing).
CREATE TABLE settlements (
    settlement_id            text PRIMARY KEY,
    invoice_id               text NOT NULL UNIQUE,
    merchant_id              text NOT NULL,
    gross_amount             bigint NOT NULL CHECK (gross_amount > 0),
    platform_fee_amount      bigint NOT NULL CHECK (platform_fee_amount >= 0),
    platform_fee_percentage  numeric(5, 2) NOT NULL,
    net_amount               bigint NOT NULL CHECK (net_amount >= 0),
    status                   text NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    created_at               timestamptz NOT NULL,
    completed_at             timestamptz,
    CHECK (gross_amount = platform_fee_amount + net_amount)
);

CREATE INDEX settlements_merchant_idx ON settlements (merchant_id, created_at DESC);

CREATE TABLE ledger_entries (
    entry_id       bigserial PRIMARY KEY,
    settlement_id  text NOT NULL REFERENCES settlements (settlement_id),
    account        text NOT NULL,
    amount         bigint NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (settlement_id, account)
);

CREATE INDEX ledger_entries_account_idx ON ledger_entries (account, created_at);
