-- The edge (docs/security.md): API keys with scopes, rotation and expiry; merchant users and the
-- platform admin; refresh tokens; suspension; the audit log.

-- A suspended merchant's keys and users are refused; its invoices are still watched and settled.
ALTER TABLE merchants ADD COLUMN suspended_at timestamptz;

-- API keys: ``ck_<key_id>_<secret>``; the key id is the lookup prefix. The secret is stored as
-- HMAC-SHA256(API_KEY_PEPPER, SHA-256(secret)): a stolen table without the pepper (which lives
-- only in the workers' environment) opens nothing. Keys made before this migration hold only
-- ``secret_sha256``: the first worker to start computes their HMAC and clears the plain digest
-- (app/adapters/postgres/api_keys.py, ``upgrade_legacy_hashes``), so they keep working, with
-- every scope, as the issue promised their merchants.
ALTER TABLE api_keys
    ALTER COLUMN secret_sha256 DROP NOT NULL,
    ADD COLUMN name text NOT NULL DEFAULT 'default key'
        CHECK (length(name) BETWEEN 1 AND 100),
    ADD COLUMN scopes text[] NOT NULL DEFAULT ARRAY[
        'invoices:read', 'invoices:write', 'settlements:read', 'refunds:write', 'payouts:read',
        'payouts:write', 'webhooks:read', 'webhooks:write', 'reports:read', 'keys:write',
        'users:write', 'audit:read'
    ]::text[] CHECK (cardinality(scopes) BETWEEN 1 AND 64),
    ADD COLUMN secret_hmac bytea,
    ADD COLUMN expires_at timestamptz,
    -- A rolled key: the previous secret keeps working until previous_valid_until.
    ADD COLUMN previous_secret_hmac bytea,
    ADD COLUMN previous_valid_until timestamptz,
    ADD COLUMN rolled_at timestamptz,
    ADD COLUMN created_by text,
    ADD CONSTRAINT api_keys_some_secret CHECK (secret_sha256 IS NOT NULL OR secret_hmac IS NOT NULL);

-- Merchant users (owner, developer, viewer) and platform admins (merchant_id NULL).
CREATE TABLE users (
    user_id        text PRIMARY KEY,
    email          text NOT NULL CHECK (length(email) BETWEEN 3 AND 254 AND email = lower(email)),
    -- argon2id (app/adapters/auth/passwords.py); NULL until an invited user sets a password.
    password_hash  text,
    merchant_id    text REFERENCES merchants (merchant_id),
    role           text NOT NULL CHECK (role IN ('owner', 'developer', 'viewer', 'admin')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text,
    disabled_at    timestamptz,
    CONSTRAINT users_admin_has_no_merchant CHECK ((role = 'admin') = (merchant_id IS NULL))
);
CREATE UNIQUE INDEX users_email_idx ON users (email);
CREATE INDEX users_merchant_idx ON users (merchant_id);

-- Invitations: the owner gets a one-time token to pass on; the invitee sets a password with it.
CREATE TABLE invitations (
    invitation_id  text PRIMARY KEY,
    user_id        text NOT NULL REFERENCES users (user_id),
    secret_hmac    bytea NOT NULL,
    expires_at     timestamptz NOT NULL,
    accepted_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invitations_user_idx ON invitations (user_id);

-- Refresh tokens ``rt_<token_id>_<secret>``, stored as an HMAC. Each refresh replaces the token
-- with a new one of the same family; a replaced token used again means it was stolen, and the
-- whole family is revoked.
CREATE TABLE refresh_tokens (
    token_id     text PRIMARY KEY,
    family_id    text NOT NULL,
    user_id      text NOT NULL REFERENCES users (user_id),
    secret_hmac  bytea NOT NULL,
    expires_at   timestamptz NOT NULL,
    replaced_at  timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- The audit log: every state-changing request, sign-in, key and webhook-endpoint change.
-- Append-only like event_store: the trigger refuses UPDATE, DELETE and TRUNCATE for every role.
CREATE TABLE audit_log (
    entry_id      bigserial PRIMARY KEY,
    occurred_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    merchant_id   text,                  -- NULL: the platform's own (admin sign-in, …)
    actor_kind    text NOT NULL,         -- api_key, user, operator, anonymous
    actor_id      text,
    actor_role    text,
    action        text NOT NULL CHECK (length(action) BETWEEN 1 AND 200),
    target_id     text,
    request_id    text,
    client_address text,
    result        text NOT NULL,         -- the HTTP status, or ok / refused for a CLI action
    details       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_merchant_idx ON audit_log (merchant_id, entry_id);

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'audit entries are never changed or removed';
END
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
