-- Idempotency-Key of POST /api/v1/invoices: the same key with the same body gives back the same
-- invoice (the stored command is sent again, and the invoice agent recognises it); the same key
-- with another body is a 409. Keys are per merchant.
CREATE TABLE idempotency_keys (
    merchant_id      text NOT NULL,
    idempotency_key  text NOT NULL,
    request_sha256   text NOT NULL,
    invoice_id       text NOT NULL,
    command          jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, idempotency_key)
);
