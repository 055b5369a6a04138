-- The invoice list shows what the invoice shows: how an underpayment was resolved, and the
-- merchant's tolerance fixed on the invoice (docs/merchant-api.md, "Resolve an underpaid invoice").
ALTER TABLE invoice_summaries
    ADD COLUMN resolution text CHECK (resolution IN ('accept', 'refund', 'extend')),
    -- The invoice version that set it: a later resolution replaces an earlier one, never the
    -- other way round, whatever order the events are projected in.
    ADD COLUMN resolution_version integer,
    ADD COLUMN underpaid_tolerance numeric(5, 2);
