-- What each merchant user wants to be told, and how (app/domain/notifications.py,
-- docs/notifications.md). A user without a row has the platform's defaults; a row is written the
-- first time they change anything. One array of notice names per channel: the notifications
-- agent asks "which users of this merchant want this notice by this channel" with = ANY().
CREATE TABLE notification_preferences (
    user_id          text        PRIMARY KEY REFERENCES users (user_id),
    merchant_id      text        NOT NULL REFERENCES merchants (merchant_id),
    email_notices    text[]      NOT NULL,
    telegram_notices text[]      NOT NULL,
    sms_notices      text[]      NOT NULL,
    -- E.164; required while sms_notices is not empty.
    sms_number       text        CHECK (sms_number ~ '^\+[1-9][0-9]{6,14}$'),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notification_preferences_sms_needs_a_number
        CHECK (cardinality(sms_notices) = 0 OR sms_number IS NOT NULL)
);

CREATE INDEX notification_preferences_merchant_idx ON notification_preferences (merchant_id);
