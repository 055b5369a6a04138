-- Underpayment resolution (docs/merchant-api.md, "Resolve an underpaid invoice").

-- A refund of what an underpaid invoice received (its resolution by refund) is paid from the
-- customer funds the invoice holds, not from the merchant's balance: `source` says which.
ALTER TABLE outgoing_transfers
    ADD COLUMN source text NOT NULL DEFAULT 'balance' CHECK (source IN ('balance', 'received'));

-- A merchant's tolerance: at expiry, an underpayment of at least this percent of the amount,
-- all confirmed, is accepted (NULL: never; set by the platform's admin).
ALTER TABLE merchants
    ADD COLUMN underpaid_tolerance numeric(5, 2)
        CHECK (underpaid_tolerance BETWEEN 0 AND 100);
