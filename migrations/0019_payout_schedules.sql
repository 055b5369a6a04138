-- Scheduled payouts (docs/merchant-api.md, "Scheduled payouts"): one standing order per merchant
-- to pay out the balance, daily or weekly, to a saved address. Each period pays at most once (the
-- period's key is the payout's idempotency key).
CREATE TABLE payout_schedules (
    merchant_id     text PRIMARY KEY REFERENCES merchants (merchant_id),
    frequency       text NOT NULL CHECK (frequency IN ('daily', 'weekly')),
    weekday         smallint CHECK (weekday BETWEEN 0 AND 6),
    hour            smallint NOT NULL DEFAULT 0 CHECK (hour BETWEEN 0 AND 23),
    address         text NOT NULL,
    minimum_amount  bigint NOT NULL CHECK (minimum_amount > 0),
    keep_amount     bigint NOT NULL DEFAULT 0 CHECK (keep_amount >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((frequency = 'weekly') = (weekday IS NOT NULL))
);
