-- A replay that fails for a reason waiting cannot fix (a bug, data its worker cannot read) is
-- marked failed with the error, rather than crashing every worker that claims it in turn.
ALTER TABLE webhook_replays DROP CONSTRAINT webhook_replays_status_check;
ALTER TABLE webhook_replays
    ADD CONSTRAINT webhook_replays_status_check
        CHECK (status IN ('queued', 'done', 'cancelled', 'failed')),
    ADD COLUMN error text;
