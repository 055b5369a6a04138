-- The webhook deliveries of one invoice across the merchant's endpoints, newest first
-- (GET /api/v1/invoices/{id}/webhook-deliveries, the dashboard's invoice page).
CREATE INDEX webhook_deliveries_aggregate_idx
    ON webhook_deliveries (merchant_id, aggregate_id, seq DESC);
