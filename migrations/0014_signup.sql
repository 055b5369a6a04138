-- Self-service sign-up of merchants (app/services/signup.py, docs/dashboard.md): a merchant's
-- first owner proves their email before the first API key. Users who existed before were made by
-- an operator or accepted a team invitation: they count as verified.
ALTER TABLE users ADD COLUMN email_verified_at timestamptz;
UPDATE users SET email_verified_at = created_at;

-- One-time links mailed to a new owner. Only the secret's HMAC is kept (like API keys).
CREATE TABLE email_verifications (
    verification_id  text PRIMARY KEY,
    user_id          text NOT NULL REFERENCES users (user_id),
    secret_hmac      bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    used_at          timestamptz
);
CREATE INDEX email_verifications_user_idx ON email_verifications (user_id);

-- Codes an operator hands out when SIGNUP_MODE=invite; each opens one merchant account.
CREATE TABLE signup_invitations (
    invitation_id  text PRIMARY KEY,
    secret_hmac    bytea NOT NULL,
    note           text CHECK (length(note) <= 200),
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz,
    merchant_id    text REFERENCES merchants (merchant_id)
);
