-- An invoice's redirect_url and cancel_url in the list read model, so GET /api/v1/invoices shows
-- the same shape as GET /api/v1/invoices/{id}. Invoices created before stay NULL (they had none).
ALTER TABLE invoice_summaries
    ADD COLUMN redirect_url text,
    ADD COLUMN cancel_url text;
