-- Refunds, payouts and their outbox belong to the platform that recorded them (its app id,
-- CHECKOUT_APP_ID): only that platform's leader drives and publishes them. Two platforms sharing
-- one database (staging beside a test run, the integration tests) must never send each other's
-- transfers with their own signer and node, nor publish each other's events to their own topics.
ALTER TABLE outgoing_transfers ADD COLUMN origin text NOT NULL DEFAULT 'crypto-checkout';
ALTER TABLE money_out_outbox ADD COLUMN origin text NOT NULL DEFAULT 'crypto-checkout';
ALTER TABLE outgoing_transfers ALTER COLUMN origin DROP DEFAULT;
ALTER TABLE money_out_outbox ALTER COLUMN origin DROP DEFAULT;

DROP INDEX outgoing_transfers_open_idx;
CREATE INDEX outgoing_transfers_open_idx ON outgoing_transfers (origin, stage, approved_at)
    WHERE stage IN ('requested', 'approved', 'signing', 'broadcast');

DROP INDEX money_out_outbox_unpublished_idx;
CREATE INDEX money_out_outbox_unpublished_idx ON money_out_outbox (origin, seq)
    WHERE published_at IS NULL;
