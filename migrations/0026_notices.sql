-- Notices to merchant users by email, Telegram and SMS (docs/notifications.md).

-- One row per notice (uuid5 of event, user, channel: app/domain/notifications.py), written by the
-- notices intake agent once per notice id, so a redelivered Kafka message sends nothing twice.
-- Each worker's notice dispatcher leases due rows (claimed_until) and makes one attempt each,
-- only of its own platform's (origin: CHECKOUT_APP_ID), as with webhook deliveries: platforms
-- sharing a database (tests, staging) send with their own channels' settings.
CREATE TABLE notice_deliveries (
    notice_id       uuid        PRIMARY KEY,
    origin          text        NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('email', 'telegram', 'sms')),
    notice          text        NOT NULL,
    user_id         text        NOT NULL,
    merchant_id     text        NOT NULL,
    subject_id      text        NOT NULL,
    source_id       text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    facts           jsonb       NOT NULL,
    traceparent     text,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'rejected', 'failed', 'skipped')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_until   timestamptz,
    last_error      text,
    -- Where it went (an address, a chat id, a number) and the provider's message id, once sent.
    sent_to         text,
    provider_id     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);

CREATE INDEX notice_deliveries_due_idx ON notice_deliveries (origin, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX notice_deliveries_user_idx ON notice_deliveries (user_id, created_at DESC);

-- A merchant user's Telegram chat (private: the chat id is the Telegram user's id). One chat per
-- user and one user per chat; deleting the row unlinks.
CREATE TABLE telegram_chats (
    user_id     text        PRIMARY KEY REFERENCES users (user_id),
    merchant_id text        NOT NULL REFERENCES merchants (merchant_id),
    chat_id     bigint      NOT NULL UNIQUE,
    username    text        CHECK (length(username) <= 64),
    linked_at   timestamptz NOT NULL DEFAULT now()
);

-- One-time link tokens (the deep link's /start payload): only their SHA-256 is kept.
CREATE TABLE telegram_link_tokens (
    token_hash  text        PRIMARY KEY,
    user_id     text        NOT NULL REFERENCES users (user_id),
    merchant_id text        NOT NULL REFERENCES merchants (merchant_id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

CREATE INDEX telegram_link_tokens_user_idx ON telegram_link_tokens (user_id);
