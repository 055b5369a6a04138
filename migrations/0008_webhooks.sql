-- Merchant webhooks: endpoints, the deliveries queued for them, and every attempt made.
--
-- Deliveries live here rather than in a Kafka consumer's position because each one has its own
-- retry clock (up to 3 days): a dead endpoint must not hold back anybody else's deliveries, so
-- the dispatcher takes due deliveries from this table (FOR UPDATE SKIP LOCKED, any worker) and
-- keeps per-invoice order by never sending a delivery while an earlier one of the same endpoint
-- and aggregate is still pending.

CREATE TABLE webhook_endpoints (
    endpoint_id                 text PRIMARY KEY,
    -- The platform (CHECKOUT_APP_ID) that owns the endpoint: its workers, and only they, send
    -- to it, so platforms sharing one database (a test run beside a developer's) stay apart.
    app_id                      text NOT NULL,
    merchant_id                 text NOT NULL REFERENCES merchants (merchant_id),
    url                         text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description                 text CHECK (length(description) <= 500),
    -- Event types sent to this endpoint: exact names or prefix wildcards ('*', 'Invoice*').
    event_types                 text[] NOT NULL CHECK (cardinality(event_types) >= 1),
    enabled                     boolean NOT NULL DEFAULT true,
    -- 'merchant' (switched off over the API) or 'failing' (failed continuously for too long).
    disabled_reason             text CHECK (disabled_reason IN ('merchant', 'failing')),
    disabled_at                 timestamptz,
    -- The signing secret, AES-256-GCM encrypted; the endpoint id is the associated data, so a
    -- ciphertext copied onto another endpoint's row does not decrypt.
    secret_key_id               text NOT NULL,
    secret_nonce                bytea NOT NULL,
    secret_ciphertext           bytea NOT NULL,
    -- After a rotation the previous secret still signs (a second v1=) until it expires.
    previous_secret_key_id      text,
    previous_secret_nonce       bytea,
    previous_secret_ciphertext  bytea,
    previous_secret_expires_at  timestamptz,
    -- Start of the current run of failed attempts; cleared by any success.
    failing_since               timestamptz,
    -- Bumped by every change that is published as an event (aggregate_version).
    version                     integer NOT NULL DEFAULT 1,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    -- Deleted endpoints are kept (their delivery log stays readable) but never sent to again.
    deleted_at                  timestamptz
);

CREATE INDEX webhook_endpoints_merchant_idx ON webhook_endpoints (merchant_id)
    WHERE deleted_at IS NULL;

CREATE TABLE webhook_deliveries (
    delivery_id      text PRIMARY KEY,
    -- Queue order: a delivery is sent only after every earlier one of its endpoint and
    -- aggregate has succeeded or failed for good.
    seq              bigserial NOT NULL UNIQUE,
    endpoint_id      text NOT NULL REFERENCES webhook_endpoints (endpoint_id),
    merchant_id      text NOT NULL,
    -- 'event' (fan-out of a domain event), 'redelivery', 'replay' or 'test'.
    origin           text NOT NULL CHECK (origin IN ('event', 'redelivery', 'replay', 'test')),
    redelivery_of    text REFERENCES webhook_deliveries (delivery_id),
    event_id         uuid NOT NULL,
    event_type       text NOT NULL,
    aggregate_id     text NOT NULL,
    -- The domain event envelope exactly as published; the body is built from it per attempt.
    event            jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- A dispatcher that took the delivery owns it until then; after a crash another takes it.
    leased_until     timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz
);

-- The dispatcher's scan: due pending deliveries, oldest first.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at, seq)
    WHERE status = 'pending';
-- The ordering check: is an earlier delivery of this endpoint and aggregate still pending?
CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (endpoint_id, aggregate_id, seq)
    WHERE status = 'pending';
-- The delivery log of an endpoint, newest first.
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, seq DESC);

CREATE TABLE webhook_attempts (
    delivery_id  text NOT NULL REFERENCES webhook_deliveries (delivery_id),
    attempt      integer NOT NULL CHECK (attempt >= 1),
    started_at   timestamptz NOT NULL,
    latency_ms   integer NOT NULL,
    status_code  integer,
    -- Why it failed: the HTTP status, a timeout, a refused connection, an unsafe address …
    error        text,
    -- The first bytes of the receiver's answer, to help the merchant debug.
    response_excerpt text,
    PRIMARY KEY (delivery_id, attempt)
);
